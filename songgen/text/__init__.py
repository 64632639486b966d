"""The text: the lyrics format (songs, titles, stanzas, the end-of-song symbol), reading text
files (encodings, folders), what in a text is not lyrics, the vocabulary, the corpus cache that
holds a text read and encoded once, and the styles of a collection (which song is whose).
Everything here works on text and ids; it knows nothing of training or sampling."""
