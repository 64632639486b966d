import pytest
import torch

from songgen.text.lyrics import fingerprint, join_songs, read_songs, split_songs

from songgen.text.vocab import EOS, Vocab

from songgen.text.reading import read_text
from songgen.errors import CorpusError, SonggenWarning
from songgen.text import lyrics as loading
from songgen.text.corpus import load_corpus


def split_train_val(tmp_path, songs, val_frac):
    """Train and validation text of a corpus file holding `songs`."""
    path = tmp_path / "split.txt"
    path.write_text("\n\n\n".join(songs), encoding="utf-8")
    corpus = load_corpus(path, val_frac)
    return corpus.vocab.decode(corpus.train), corpus.vocab.decode(corpus.val)


def test_normalise_bom_crlf_cr_and_nfc(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("\ufeffCafe\u0301 one\r\ntwo\rthree\n".encode("utf-8"))
    assert read_text(path) == "Caf\u00e9 one\ntwo\nthree\n"


def test_nfc_and_nfd_give_the_same_vocabulary(tmp_path):
    (tmp_path / "nfc.txt").write_text("# Caf\u00e9\n\nna\u00efve\n", encoding="utf-8")
    (tmp_path / "nfd.txt").write_text("# Cafe\u0301\n\nnai\u0308ve\n", encoding="utf-8")
    a = Vocab.from_text(join_songs(read_songs(tmp_path / "nfc.txt")))
    b = Vocab.from_text(join_songs(read_songs(tmp_path / "nfd.txt")))
    assert a == b


def test_invalid_utf8_names_file_line_and_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"first line\nsecond \xff line\n")
    with pytest.raises(CorpusError) as err:
        read_text(path)
    assert str(err.value) == (f"{path}: not valid UTF-8 at line 2, byte offset 18 (byte 7 of the "
                              "line); save the file as UTF-8, or give its encoding "
                              "(e.g. cp1252 for Windows text)")


def test_nul_bytes_are_refused_as_binary(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(b"abc\x00def")
    with pytest.raises(CorpusError, match="binary file"):
        read_text(path)


def test_utf16_with_bom_is_read(tmp_path):
    path = tmp_path / "u16.txt"
    path.write_bytes("# T\n\nla la\n".encode("utf-16"))
    assert read_text(path) == "# T\n\nla la\n"


def test_songs_split_on_two_or_more_blank_lines():
    text = "# A\n\nx\n\ny\n\n\n# B\n\nz\n \n\n\n\n# C\n\nw\n\n"
    assert split_songs(text) == ["# A\n\nx\n\ny", "# B\n\nz", "# C\n\nw"]


def test_folder_reads_txt_files_in_sorted_order(tmp_path):
    (tmp_path / "b.txt").write_text("# B\n\nsecond\n")
    (tmp_path / "a.txt").write_text("# A\n\nfirst\n")
    (tmp_path / "notes.md").write_text("ignored")
    assert read_songs(tmp_path) == ["# A\n\nfirst", "# B\n\nsecond"]


def test_folder_without_txt_and_empty_file_are_errors(tmp_path):
    with pytest.raises(CorpusError, match="holds no .txt files"):
        read_songs(tmp_path)
    (tmp_path / "blank.txt").write_text(" \n\n\t\n")
    with pytest.raises(CorpusError, match="holds no lyrics"):
        read_songs(tmp_path / "blank.txt")


def test_vocab_roundtrip_smallest_dtype_and_eos_first():
    text = join_songs(["# Ünïcode ♪\n\nλόγια 歌詞 🎵", "# B\n\nb"])
    vocab = Vocab.from_text(text)
    assert vocab.chars[0] == EOS
    ids = vocab.encode(text)
    assert ids.dtype == torch.uint8
    assert vocab.decode(ids) == text
    assert Vocab([EOS] + [chr(0x4E00 + i) for i in range(300)]).dtype == torch.int16


def test_encode_in_chunks_matches_whole(monkeypatch):
    import songgen.text.lyrics as corpus
    import songgen.text.vocab as vocab_module

    text = join_songs(["# abc\n\nhello wörld ♪"] * 50)
    vocab = Vocab.from_text(text)
    whole = vocab.encode(text)
    fingerprint = corpus.fingerprint(text)
    monkeypatch.setattr(corpus, "READ_BYTES", 7)
    monkeypatch.setattr(vocab_module, "SLICE", 7)
    assert Vocab.from_text(text) == vocab
    assert torch.equal(vocab.encode(text), whole)
    assert corpus.fingerprint(text) == fingerprint


def test_encode_unknown_characters_lists_them():
    vocab = Vocab.from_text("abc")
    with pytest.raises(CorpusError, match="has characters the model never saw: 'x', 'z'"):
        vocab.encode("abzx")


def test_validation_is_the_tail_cut_at_a_song_boundary(tmp_path):
    songs = [f"# Song {i}\n\n" + " ".join(["la"] * 30) for i in range(20)]
    train, val = split_train_val(tmp_path, songs, 0.1)
    assert train + val == join_songs(songs)
    assert val.startswith("# Song 18") and train.endswith(EOS)


def test_versions_of_one_song_stay_on_one_side(tmp_path):
    songs = [f"# Ballad {i // 4} ({chr(65 + i % 4)})\n\n" + " ".join(["la"] * 30) for i in range(20)]
    train, val = split_train_val(tmp_path, songs, 0.15)
    last_train = train.rstrip(EOS).split(EOS)[-1].split("\n")[0]
    first_val = val.split("\n")[0]
    assert last_train.split(" (")[0] != first_val.split(" (")[0]


def test_single_song_splits_at_a_line_boundary(tmp_path):
    song = "\n".join(f"line {i} of the only song" for i in range(50))
    train, val = split_train_val(tmp_path, [song], 0.1)
    assert train + val == song + EOS
    assert train.endswith("\n") and val.startswith("line ")


def test_load_corpus_checks_fingerprint(songs_file, tmp_path):
    corpus = load_corpus(songs_file)
    assert corpus.fingerprint == fingerprint(join_songs(read_songs(songs_file)))
    other = tmp_path / "other.txt"
    other.write_text("# Other\n\nwords here\nand here\n")
    with pytest.raises(CorpusError, match="not the text the checkpoint was trained on"):
        load_corpus(other, expect_fingerprint=corpus.fingerprint)


def test_a_corpus_too_large_for_memory_is_refused_before_reading(songs_file, monkeypatch):
    import songgen.text.reading as textfiles

    monkeypatch.setattr(textfiles, "available_memory", lambda: 1000)
    with pytest.raises(CorpusError, match=r"the corpus is 0.00 GB; loading it needs about "
                                          r"0.0 GB of memory but 0.0 GB is free; train on a part"):
        read_songs(songs_file)


def test_streamed_loading_agrees_with_whole_songs_whatever_the_piece_size(tmp_path,
                                                                          monkeypatch):
    # Breaks made of blank lines holding spaces, CRLF breaks, a BOM, decomposed accents and
    # multi-byte characters: every piece size cuts them somewhere.
    raw = ("\ufeff# A\r\n\r\nla la\r\n\r\n \r\n\t\r\n  \r\n# B \u266a\n\nlo\u0301 lo\n\n\n  \n"
           "\t\n\n# C (x)\n\nn\u00e9 \U0001f3b5\n\n\n\n# C (y)\n\nend  \n \n").encode("utf-8")
    path = tmp_path / "tricky.txt"
    path.write_bytes(raw)
    songs = read_songs(path)
    assert [s.split("\n")[0] for s in songs] == ["# A", "# B \u266a", "# C (x)", "# C (y)"]
    expected = Vocab.from_text(join_songs(songs)).encode(join_songs(songs))
    for size in range(1, len(raw) + 2):
        monkeypatch.setattr(loading, "READ_BYTES", size)
        corpus = load_corpus(path, 0.5)
        assert torch.equal(torch.cat([corpus.train, corpus.val]), expected), size
        # Versions of one song stay together: validation starts at "# C (x)", not "# C (y)".
        assert corpus.vocab.decode(corpus.val).startswith("# C (x)")


def test_loading_refuses_a_corpus_too_large_for_memory_before_reading(songs_file, monkeypatch):
    import songgen.text.reading as textfiles

    monkeypatch.setattr(textfiles, "available_memory", lambda: 1000)
    monkeypatch.setattr("songgen.text.corpus._Encoder", None)  # nothing may be read or allocated
    with pytest.raises(CorpusError, match=r"the corpus is 0.00 GB; loading it needs about "
                                          r"0.6 GB of memory but 0.0 GB is free; train on a part"):
        load_corpus(songs_file)


def test_a_corpus_of_few_long_songs_is_cut_at_a_line_near_the_target(tmp_path):
    # Two long texts (like a play): the song boundary is far from 10%, so a line boundary is
    # used, and validation is close to the 10% asked for.
    acts = ["\n".join(f"line {i} of act {a}" for i in range(400)) for a in (1, 2)]
    path = tmp_path / "play.txt"
    path.write_text("\n\n\n".join(acts), encoding="utf-8")
    corpus = load_corpus(path, 0.1)
    assert corpus.songs == 2
    assert 0.09 < len(corpus.val) / corpus.chars < 0.11
    assert corpus.vocab.decode(corpus.train).endswith("\n")
    assert corpus.vocab.decode(corpus.val).startswith("line ")


def test_a_long_text_without_song_breaks_gets_a_warning(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("\n\n".join(f"la la la {i}\nlo lo lo" for i in range(2000)),
                    encoding="utf-8")
    with pytest.warns(SonggenWarning, match=r"one.txt reads as one song of [\d,]+ characters: "
                                            r"it never has two blank lines in a row"):
        corpus = load_corpus(path)
    assert "1 song," in corpus.summary()


def test_a_title_after_one_blank_line_starts_a_song(tmp_path, monkeypatch):
    # Issue #28, 1: ten songs, each `# Title`, blank line, stanzas, one blank line between
    # songs, were read as one song.
    songs = [f"# Song {i}\n\nla la la {i}\nlo lo lo\n\nli li {i}" for i in range(10)]
    text = "\n\n".join(songs) + "\n"
    assert split_songs(text) == songs
    path = tmp_path / "ten.txt"
    path.write_text(text.replace("\n\n# Song 3", "\n \t\n# Song 3"), encoding="utf-8")
    expected = Vocab.from_text(join_songs(read_songs(path))).encode(join_songs(read_songs(path)))
    assert len(read_songs(path)) == 10
    for size in (1, 5, 13, 64, 10_000):  # streamed in pieces: the same songs
        monkeypatch.setattr(loading, "READ_BYTES", size)
        corpus = load_corpus(path)
        assert corpus.songs == 10, size
        assert torch.equal(torch.cat([corpus.train, corpus.val]), expected), size
    assert ("10 songs (split at two blank lines, or one before a # Title line), "
            in corpus.summary())
    # A "#" that is not a title line's "# " leaves the song whole.
    assert split_songs("# A\n\nla\n\n#la\n\n #x") == ["# A\n\nla\n\n#la\n\n #x"]


def test_auto_encoding_reads_each_file_in_its_own(tmp_path, monkeypatch):
    text = "# A\n\ncaf\u00e9 \u2019\u2014 na\u00efve\n"
    (tmp_path / "a.txt").write_bytes(text.encode("cp1252"))
    (tmp_path / "b.txt").write_bytes(text.encode("utf-8"))
    (tmp_path / "c.txt").write_bytes(b"# C\n\nplain\n")
    monkeypatch.setattr(loading, "READ_BYTES", 4)  # the choice is the whole file's, not a piece's
    assert read_songs(tmp_path, "auto") == [text.strip(), text.strip(), "# C\n\nplain"]
    assert read_text(tmp_path / "a.txt", "auto") == text


def test_wrong_single_byte_encodings_are_refused(tmp_path):
    from songgen.text.reading import WrongEncoding

    path = tmp_path / "x.txt"
    path.write_bytes("one\ntwo \u2019 three\n".encode("cp1252"))
    with pytest.raises(WrongEncoding, match=r"x.txt read as latin-1 holds control characters "
                                            r"that no lyrics hold \(U\+0092; first at line 2\)"
                                            r": it reads as cp1252") as caught:
        read_songs(path, "latin-1")
    assert caught.value.fits == "cp1252"
    assert read_songs(path, "cp1252") == ["one\ntwo \u2019 three"]
    path.write_bytes("ni\u00f1o\n".encode("utf-8"))
    with pytest.raises(WrongEncoding) as caught:
        read_songs(path, "cp1252")
    assert caught.value.fits == "utf-8"
    path.write_bytes("ni\u00f1o\n".encode("latin-1"))  # real Latin-1: read as it is
    assert read_songs(path, "latin-1") == ["ni\u00f1o"]
