"""What a song is made of, measured from any text: its shape (titles, stanzas, line and
song lengths, endings), rhyme, a chorus, real words (and the English word list), syllables.
Measured from the corpus when a run is created and kept in the checkpoint; the writing of songs
(songgen.writing) steers by these measures, and `songgen sample` reports them."""
