"""Upper bounds on what one command may ask for, shared by the library and the command line."""

MAX_LENGTH = 1_000_000   # characters in one song
MAX_SONGS = 10_000       # songs in one call
