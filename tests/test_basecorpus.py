"""The base model's corpus (basecorpus/): the training text decompresses, reads as lyrics the
way `songgen train` reads it, holds verse only (no Project Gutenberg text, no illustration,
page-number or footnote marks), every song has a title, and no held-out song is in it."""

import lzma
import re
from pathlib import Path

import pytest

from songgen.text.lyrics import read_songs, title_of

BASE = Path(__file__).resolve().parents[1] / "basecorpus"
VERSE = BASE / "verse.txt.xz"
HELDOUT = sorted((BASE / "heldout").glob("*.txt"))

pytestmark = pytest.mark.skipif(not VERSE.exists(), reason="basecorpus/verse.txt.xz not built")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("base") / "verse.txt"
    path.write_bytes(lzma.decompress(VERSE.read_bytes()))
    return path, path.read_text(encoding="utf-8"), read_songs(path)


def _key(song: str) -> str:
    title = re.sub(r"\s*\([^()]*\)\s*$", "", title_of(song))
    return re.sub(r"[^a-z]+", " ", title.lower()).strip()


def test_the_corpus_reads_as_titled_songs(corpus):
    _, text, songs = corpus
    assert len(songs) > 2000
    assert text.count("\n# ") + 1 == len(songs)  # every title starts one song, no more
    assert all(title_of(song) for song in songs)
    assert "\r" not in text and "\n\n\n\n" not in text


@pytest.mark.parametrize("which", ["training", "held out"])
def test_only_verse_is_left(corpus, which):
    texts = [corpus[1]] if which == "training" else [p.read_text("utf-8") for p in HELDOUT]
    for text in texts:
        lower = text.lower()
        for word in ("gutenberg", "trademark", "ebook", "transcriber", "[illustration",
                     "[footnote", "footnote 1", "[music"):
            assert word not in lower, word
        assert not re.search(r"\[\d+\]|\[[a-z]{1,2}\]|\{\d+\}", text)  # footnote/page marks
        assert not re.search(r"^[ \t]*\d+[ \t]*$", text, re.M)  # a page number on its own line
        assert "_" not in text  # _italics_ marks


def test_the_held_out_books_stay_out_of_training(corpus):
    _, text, songs = corpus
    assert {p.stem for p in HELDOUT} == {"27129", "47607", "72492"}
    training = {_key(song) for song in songs}
    sizes = []
    for path in HELDOUT:
        held = read_songs(path)
        assert len(held) >= 20 and all(title_of(song) for song in held)
        assert not training & {_key(song) for song in held}, path.name
        sizes.append(len(held))
    assert sum(sizes) >= 150  # room for a 30-song and a 150-song benchmark collection
    for title in ("Song-Books of the Elizabethan", "Songs of Yorkshire", "Christmas Carols"):
        assert title not in text
