"""Issue #36, item 1: a raw book given as lyrics. The Project Gutenberg licence is left out (and
said); page numbers, notes, footnotes, music marks, contents pages, prose and a text too small
to learn from are reported with file:line, never dropped unseen; `songgen check` shows them
all and writes a clean copy; real lyrics raise nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from songgen.cli.commands import cli

from .conftest import make_songs

TINY = ["--embed-dim", "8", "--hidden-size", "16", "--layers", "1", "--device", "cpu",
        "--seq-len", "16", "--batch-size", "4", "--steps", "2", "-q"]

HEADER = """The Project Gutenberg eBook of The Shanty Book

This eBook is for the use of anyone anywhere in the United States and
most other parts of the world at no cost and with almost no restrictions
whatsoever.

*** START OF THE PROJECT GUTENBERG EBOOK THE SHANTY BOOK ***
"""
BOOK = """


CONTENTS

    Blow the Man Down ........ 1
    Boney ........ 2



PREFACE

The shanty was the work-song of the sailor in the days of sail, and the
words that follow were taken down from the singing of old seamen who had
used them at the capstan and the halliards for the better part of their
lives at sea.


# Blow the Man Down

Oh, blow the man down, bullies, blow the man down, [1/8]
Way ay, blow the man down.

1

Oh, blow the man down in Liverpool town,[1]
Give me some time to blow the man down.

[Illustration: A ship at sea]

[1] Sung at the halliards.


# Boney

Boney was a warrior,
Way ay yah!
"""
FOOTER = """
*** END OF THE PROJECT GUTENBERG EBOOK THE SHANTY BOOK ***

Updated editions will replace the previous one.
"""
RAW = HEADER + BOOK + FOOTER
# Long enough not to be called too small: the songs of the book, and more real ones after.
SONGS = "\n\n\n" + make_songs(12)

CLEAN = """PREFACE


# Blow the Man Down

Oh, blow the man down, bullies, blow the man down,
Way ay, blow the man down.

Oh, blow the man down in Liverpool town,
Give me some time to blow the man down.


# Boney

Boney was a warrior,
Way ay yah!
"""


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return lambda *args: CliRunner().invoke(cli, [str(a) for a in args])


def test_training_leaves_out_the_licence_and_says_where_the_rest_is(run, tmp_path):
    (tmp_path / "raw.txt").write_text(HEADER + BOOK + SONGS + FOOTER, encoding="utf-8")
    result = run("train", "raw.txt", *TINY)
    assert result.exit_code == 0, result.output
    end = (HEADER + BOOK + SONGS).count("\n") + 2  # the END line (FOOTER starts with a \n)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    assert warnings == [
        f"Warning: raw.txt: left out the Project Gutenberg licence header and footer (lines 1-7, "
        f"{end}-{end + 2}): it is not lyrics",
        "Warning: raw.txt holds what looks like more than lyrics, trained on as it is: "
        "1 page number (raw.txt:31 '1'); "
        "1 bracketed note or illustration (raw.txt:36 '[Illustration: A ship at sea]'); "
        "1 footnote (raw.txt:38 '[1] Sung at the halliards.'); "
        "1 footnote mark (raw.txt:33 '...man down in Liverpool town,[1]'); "
        "1 music mark (raw.txt:28 '...bullies, blow the man down, [1/8]'); "
        "1 index or contents page (raw.txt:11 'CONTENTS'); "
        "1 prose paragraph (raw.txt:20 'The shanty was the work-song of the...'); "
        "see every place with: songgen check raw.txt (and -o cleaned.txt writes a copy "
        "without them)"]
    from songgen.text.lyrics import read_songs

    songs = read_songs(tmp_path / "raw.txt")
    assert not any("Gutenberg" in song for song in songs)  # the licence is not trained on
    assert any("[Illustration: A ship at sea]" in song for song in songs)  # the rest is kept


def test_check_reports_every_place_and_writes_a_clean_copy_never_over_a_file(run, tmp_path):
    (tmp_path / "raw.txt").write_text(RAW, encoding="utf-8")
    result = run("check", "raw.txt", "-o", "clean.txt")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "raw.txt: 48 lines, 604 characters\n"
        "raw.txt: left out the Project Gutenberg licence header and footer (lines 1-7, 46-48): "
        "it is not lyrics\n"
        "raw.txt holds only 604 characters of lyrics: far too little to learn from (a model "
        "needs 1,000 at the very least, and a megabyte or more for real verses)\n"
        "what looks like more than lyrics (training reads it as it is; -o writes a copy "
        "without it):\n"
        "  1 page number\n    raw.txt:31 '1'\n"
        "  1 bracketed note or illustration\n    raw.txt:36 '[Illustration: A ship at sea]'\n"
        "  1 footnote\n    raw.txt:38 '[1] Sung at the halliards.'\n"
        "  1 footnote mark\n    raw.txt:33 '...man down in Liverpool town,[1]'\n"
        "  1 music mark\n    raw.txt:28 '...bullies, blow the man down, [1/8]'\n"
        "  1 index or contents page\n    raw.txt:11 'CONTENTS'\n"
        "  1 prose paragraph\n    raw.txt:20 'The shanty was the work-song of the...'\n")
    assert result.stderr == ("wrote clean.txt: 21 of 48 lines left out; look it over, then "
                             "train on it: songgen train clean.txt\n")
    assert (tmp_path / "clean.txt").read_text(encoding="utf-8") == CLEAN
    again = run("check", "raw.txt", "-o", "clean.txt")
    assert again.exit_code == 1
    assert again.stderr == ("Error: clean.txt already exists; choose a new name (songgen never "
                            "overwrites a file)\n")
    assert (tmp_path / "clean.txt").read_text(encoding="utf-8") == CLEAN


def test_check_of_a_folder_writes_a_folder_of_clean_copies(run, tmp_path):
    (tmp_path / "books" / "sea").mkdir(parents=True)
    (tmp_path / "books" / "sea" / "raw.txt").write_text(RAW, encoding="utf-8")
    (tmp_path / "books" / "mine.txt").write_text(make_songs(12), encoding="utf-8")
    result = run("check", "books", "-o", "clean")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "clean" / "sea" / "raw.txt").read_text(encoding="utf-8") == CLEAN
    assert (tmp_path / "clean" / "mine.txt").read_text(encoding="utf-8") == make_songs(12)
    assert "  1 page number\n    books/sea/raw.txt:31 '1'\n" in result.stdout


def test_a_text_far_too_small_is_warned_about(run, tmp_path):
    (tmp_path / "tiny.txt").write_text("la la la la\nlo lo lo\n" * 4, encoding="utf-8")
    result = run("train", "tiny.txt", *TINY[:8], "--steps", 1)  # the batch shape fitted to it
    assert result.exit_code == 0, result.output
    assert ("\ntiny.txt holds only 83 characters of lyrics: far too little to learn from (a "
            "model needs 1,000 at the very least, and a megabyte or more for real verses)\n"
            ) in result.stderr


def test_check_of_real_lyrics_finds_nothing(run, tmp_path):
    (tmp_path / "songs.txt").write_text(make_songs(), encoding="utf-8")
    result = run("check", "songs.txt")
    assert result.exit_code == 0
    assert result.stdout.endswith("; nothing in it looks like anything but lyrics\n")


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL = sorted((Path(__file__).resolve().parents[1] / "data").glob("*.txt")) + (
    sorted(SHARED.glob("*.txt")) if SHARED.is_dir() else [])


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_lyrics_raise_no_false_warning(path):
    from songgen.text.notlyrics import check_text

    checked = check_text(path)
    assert checked.clean(), [(kind, f.places[:3]) for r in checked.reports
                             for kind, f in r.found.items()]


def test_a_book_of_footnoted_verse_is_told_apart_from_its_verse():
    from songgen.text.notlyrics import Scanner

    scanner = Scanner("book.txt")
    text = ("Some swelling[4] lips and red;\nPh[oe]bus is risen in the east,\n"
            "Then burst[s] she forth in passion\n\n[4] Old ed. \"smelling.\"\n")
    assert scanner.feed(text) == text  # nothing but the licence is taken out while reading
    report = scanner.finish()
    assert {kind: f.count for kind, f in report.found.items()} == {"footnote": 1, "mark": 1}


def test_a_folder_without_txt_files_says_what_it_holds(run, tmp_path):
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "cover.png").write_bytes(b"\x89PNG\r\n")
    result = run("train", "pics", *TINY)
    assert result.exit_code == 1
    assert result.stderr == ("Error: pics holds no .txt files (only 1 .png); put one or more "
                             "UTF-8 lyrics files in it\n")
