"""Upper bounds on what one command may ask for, shared by the library and the command line.

They are far beyond any useful setting; their job is to turn a typo (an extra zero or three)
into a clear message instead of an allocation that exhausts memory.
"""

MAX_LENGTH = 1_000_000   # characters in one song
MAX_SONGS = 10_000       # songs in one call
MAX_HIDDEN = 8192        # LSTM units per layer
MAX_EMBED = 4096         # embedding size
MAX_LAYERS = 16
MAX_SEQ_LEN = 10_000
MAX_BATCH = 8192
MAX_SEED = 2**63 - 1
MAX_TEMPERATURE = 100.0  # already as good as uniform; far above, float32 overflows
