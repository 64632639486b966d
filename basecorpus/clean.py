"""Turn the raw Project Gutenberg books of the base corpus into songgen's lyrics format.

    python basecorpus/clean.py RAW_DIR [--out basecorpus]

RAW_DIR holds each book's text file as its snapshot names it (`NNNNN-0.txt`, see books.py) and
`child_ballads.txt` (the five Child volumes, already cleaned: ../shared/data/child_ballads.txt).
It writes `verse.txt.xz` (the training books), `heldout/NNNNN.txt` (the books kept out of
training) and `SOURCES.md`. Each book's own quirks (where its verse starts and ends, which
sections are prose, how its poems are headed) are rules in books.py; this file is the engine
that applies them, the same way for every book.
"""

from __future__ import annotations

import argparse
import lzma
import re
import sys
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from books import BOOKS, CHILD_FILE, HELDOUT  # noqa: E402

# -- the whole file ------------------------------------------------------------------------

_PG_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.M)
_PG_END = re.compile(r"^(\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project "
                     r"Gutenberg|END OF (THE|THIS) PROJECT GUTENBERG)", re.M | re.I)


def strip_gutenberg(text: str) -> str:
    """The book without Project Gutenberg's header, licence and trademark text."""
    start = _PG_START.search(text)
    if start:
        text = text[start.end():]
    end = _PG_END.search(text)
    return text[:end.start()] if end else text


def _find(pattern: str, text: str, pos: int = 0, what: str = "") -> re.Match:
    match = re.compile(pattern, re.M).search(text, pos)
    if not match:
        raise SystemExit(f"error: rule {what} {pattern!r} matches nothing; fix it in books.py")
    return match


_GENERIC_DROPS = (r"^ *Note: Project Gutenberg", r"^ *\[?Transcriber['’]s [Nn]otes?",
                  r"^ *TRANSCRIBER['’]S NOTES?")


def cut(text: str, rule: dict) -> str:
    """The verse part of the book: from `start` to `end`, less every `drop` range (a start
    pattern, and the pattern the range ends before; '$' ends at the end of the text)."""
    for begin in _GENERIC_DROPS:  # notes on the e-text itself, up to the next gap
        text = re.compile(begin + r"(?:.*\n)*?(?=[ \t]*\n[ \t]*\n[ \t]*\n|\Z)", re.M).sub(
            "\n", text)
    if rule.get("start"):
        text = text[_find(rule["start"], text, what="start").start():]
    if rule.get("end"):
        text = text[:_find(rule["end"], text, what="end").start()]
    for begin, stop, *gap in rule.get("drop", ()):
        pos = 0
        while True:
            first = re.compile(begin, re.M).search(text, pos)
            if not first:
                break
            if stop == "$":
                last = len(text)
            else:
                after = re.compile(stop, re.M).search(text, first.end())
                last = after.start() if after else len(text)
            filler = gap[0] if gap else "\n\n\n\n"  # by default, a gap as between poems
            text = text[:first.start()] + filler + text[last:]
            pos = first.start() + len(filler)
    return text


def _bracket_end(text: str, start: int) -> int:
    """Where the bracket opened at `start` closes (brackets nest), or the text's end."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "[":
            depth += 1
        elif text[i] == "]":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


def remove_brackets(text: str, words: tuple[str, ...], keep_inside: tuple[str, ...] = ()) -> str:
    """Take out bracketed blocks that open with one of `words` ([Illustration: ...],
    [Footnote ...]); for `keep_inside` words only the bracket and the word go, the text stays
    (the Crane books print lyrics inside [Music: ...])."""
    pattern = re.compile(r"\[(%s)\b:?" % "|".join(re.escape(w) for w in words + keep_inside))
    out, pos = [], 0
    for match in pattern.finditer(text):
        if match.start() < pos:
            continue
        end = _bracket_end(text, match.start())
        out.append(text[pos:match.start()])
        if match.group(1) in keep_inside:
            out.append(text[match.end():end - 1])
        pos = end
    out.append(text[pos:])
    return "".join(out)


_NOTE_START = re.compile(r"^ {0,8}\[(\d+|[a-z]{1,2}|[A-Z]|\*|†)\][ :]?\S")


def remove_note_blocks(text: str) -> str:
    """Footnotes printed as paragraphs that open with their mark (`[12] text...`), up to the
    next blank line, or to the closing bracket where the note is itself bracketed."""
    lines, out, skipping = text.split("\n"), [], False
    for line in lines:
        if not skipping and _NOTE_START.match(line):
            skipping = True
        if skipping:
            if not line.strip():
                skipping = False
                out.append(line)
            continue
        out.append(line)
    return "\n".join(out)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def rejoin(lines: list[str], rule: dict) -> list[str]:
    """Long verse lines that the e-text wrapped, the rest set far to the right on a line of
    its own, made one line again ("...the tubes are twisted and" + "dried,")."""
    if not rule.get("rejoin", True):
        return lines
    out: list[str] = []
    for line in lines:
        prev = out[-1] if out else ""
        if (line.strip() and len(prev.strip()) >= 50
                and (line.strip()[0].islower() or prev.rstrip()[-1].isalpha())
                and _indent(line) >= _indent(prev) + rule.get("rejoin_indent", 8)
                and len(line.strip()) <= 30 and not is_caps_heading(line.strip(), rule)
                and not line.strip().startswith("[")):
            out[-1] = prev.rstrip() + " " + line.strip()
        else:
            out.append(line)
    return out


# -- line by line --------------------------------------------------------------------------

_INLINE = [
    (re.compile(r"\[(?:\d+|[a-z]{1,2}|[A-Z]|\*|†)\]"), ""),        # footnote marks
    (re.compile(r"\{(?:p[gp]?\.? ?)?[0-9ivxlc]+\}", re.I), ""),      # {12} {pg 12} page marks
    (re.compile(r"\[(?:Page|Pg|p)\.? ?[0-9ivxlc]+\]", re.I), ""),   # [Page 12] page marks
    (re.compile(r"(?<=\w)[*†‡§]+"), ""),                           # word* footnote marks
    (re.compile(r"\[(?:Greek|Hebrew): ?[^\]]*\]"), ""),               # transliterations
]
# (a line of roman numerals is left to `segment`: it may number poems, or stanzas)
_PAGE_ONLY = re.compile(r"^\s*(?:\[?(?:Page|Pg|p\.)?\s*[0-9]+\]?|[-–—]\s*[0-9]+\s*[-–—]|"
                        r"\[(?:Page |Pg |p\. ?)?[ivxlc]+\])\s*$", re.I)
_SIGNATURE = re.compile(r"^\s*(?:[A-Z]\.\s?){2,4}$")  # "R. L. S." under a poem
_SEPARATOR = re.compile(r"^\s*(?:\*\s*){2,}$|^\s*[-–—=_~.·•]{3,}\s*$|^\s*(?:\*\s+){2,}\*?\s*$")
_MARGIN_NUMBER = re.compile(r"(\S)\s{3,}\d{1,4}\s*$")
_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]*?\S)_(?![\w_])")


def clean_line(line: str, rule: dict) -> str | None:
    """One line with its marks taken out; None for a line that is not verse at all (a page
    number, a separator), which becomes a blank line."""
    if rule.get("drop_lines") and re.search(rule["drop_lines"], line):
        return None
    if _SEPARATOR.match(line) or _SIGNATURE.match(line) or _PAGE_ONLY.match(line):
        return None
    for pattern, new in _INLINE:
        line = pattern.sub(new, line)
    line = _MARGIN_NUMBER.sub(r"\1", line)
    line = _ITALIC.sub(r"\1", line).replace("_", "")
    for mark in rule.get("markup", ("+", "=")):
        line = re.sub(r"(?<!\w)%s(?=\S)([^%s\n]*?\S)%s(?!\w)" % ((re.escape(mark),) * 3), r"\1",
                      line)
    for old, new in rule.get("replace", ()):
        line = re.sub(old, new, line)
    line = re.sub(r"[ \t]+", " ", line).strip()
    if rule.get("caps_words") and any(c.islower() for c in line):  # HARTSTONGUE -> Hartstongue
        line = re.sub(r"\b[A-Z][A-Z’'-]*[A-Z]\b", lambda m: m.group(0).title().replace(
            "’S", "’s").replace("'S", "'s"), line)
    if rule.get("small_caps"):  # a poem's opening words in small capitals: "SAID CROCUS:"
        line = re.sub(r"^[A-Z][A-Z’'-]+(?: [A-Z][A-Z’'-]+)*\b",
                      lambda m: m.group(0).title().replace("’S", "’s"), line)
    return line


# -- poems ---------------------------------------------------------------------------------

_ROMAN = re.compile(r"^(?:PART |CANTO |BOOK |NO\.? )?[IVXLC]+\.?$|^\d+\.?$|^[IVXLC]+\.?[-—:]", re.I)


def is_caps_heading(line: str, rule: dict) -> bool:
    """A line in capitals (a heading in most of these books), short, with letters."""
    letters = [c for c in line if c.isalpha()]
    if len(letters) < rule.get("min_caps", 2) or len(line) > 80:
        return False
    return not any(c.islower() for c in letters)


_STRICT_ROMAN = re.compile(r"(?=[IVXLC])(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})")


def title_case(title: str) -> str:
    """A heading in capitals in title case, the way the bundled songs write titles; words
    already in lower or mixed case (a "Ye", a "McKAN") keep theirs."""
    small = {"a", "an", "and", "as", "at", "but", "by", "for", "in", "of", "on", "or", "the",
             "to", "o'", "wi'", "o", "from", "with", "ye", "nor", "de", "la", "le", "o’"}
    out = []
    for i, word in enumerate(title.split(" ")):
        core = word.lstrip("'\"‘“(")
        lead = word[:len(word) - len(core)]
        letters = [c for c in core if c.isalpha()]
        if len(letters) < 2 and core.rstrip(".,;:!?") not in ("A",) or any(
                c.islower() for c in letters):
            out.append(word)
        elif _STRICT_ROMAN.fullmatch(core.rstrip(".,:;")) and core.rstrip(".,:;") != "I":
            out.append(word)
        elif i and core.lower() in small:
            out.append(lead + core.lower())
        else:
            low = core.lower()
            out.append(lead + low[:1].upper() + low[1:])
    return " ".join(out)


def tidy_title(title: str) -> str:
    title = re.sub(r"\s+", " ", title).strip()
    title = re.sub(r"^[IVXLC]+\.\s+(?=\S)|^\d+\.\s+(?=\S)", "", title)  # "IV. THE MOTHER'S STORY"
    title = title.strip(" .,;:-—")
    return title_case(title)


def segment(lines: list[str | None], rule: dict) -> list[tuple[str | None, list[str]]]:
    """The cleaned lines cut into poems at their headings: (title or None, lines). A heading
    is a capitals line after `caps_gap` blank lines ("caps"), or any short line alone between
    `gap` blank lines before and one after ("gap"); capitals lines right under a heading
    continue it."""
    heads = rule.get("heads", ("caps", "gap"))
    poems: list[tuple[str | None, list[str]]] = []
    title_parts: list[str] = []
    body: list[str] = []
    blanks = 99  # the start of the text counts as a gap
    not_heading = re.compile(rule.get("not_heading", r"(?!)"))
    for i, line in enumerate(lines):
        if not line:
            blanks += 1
            body.append("")
            continue
        after = lines[i + 1] if i + 1 < len(lines) else None
        caps = is_caps_heading(line, rule) and not _ROMAN.match(line)
        heading = ("caps" in heads and caps and blanks >= rule.get("caps_gap", 1)) or (
            "gap" in heads and blanks >= rule.get("gap", 3) and not after
            and len(line) <= 70 and not _ROMAN.match(line) and not line.endswith((",", ";")))
        if title_parts and not body_text(body) and caps:
            heading = True  # the heading's second line
        if not_heading.search(line):
            heading = False
        split = rule.get("split_gap") and blanks >= rule["split_gap"] and body_text(body)
        if split and not heading:  # an untitled piece after a wide gap: a new poem
            poems.append((" ".join(title_parts) or None, body))
            title_parts, body = [], []
        if heading:
            if body_text(body):
                poems.append((" ".join(title_parts) or None, body))
                title_parts, body = [], []
            if blanks >= rule.get("retitle_gap", 3):
                title_parts = []  # a lone heading left over where a section was dropped
            if not title_parts or title_parts[-1].rstrip(".") != line.rstrip("."):
                title_parts.append(line)
        elif _ROMAN.match(line):
            numerals = rule.get("numerals", "drop")
            if numerals == "title":  # the number is the poem's only heading: "Sonnet IV"
                if body_text(body):
                    poems.append((" ".join(title_parts) or None, body))
                title_parts, body = [rule.get("numeral_title", "") + line.rstrip(".")], []
                blanks = 0
                continue
            first = line.rstrip(".") in ("I", "1")
            if body_text(body) and (numerals == "split" or numerals == "split_first" and first):
                poems.append((" ".join(title_parts) or None, body))
                title_parts, body = [], []
            body.append("")
            blanks += 1  # a section number stands for a gap: what follows may be a heading
            continue
        else:
            body.append(line)
        blanks = 0
    if body_text(body):
        poems.append((" ".join(title_parts) or None, body))
    return poems


def body_text(body: list[str]) -> list[str]:
    return [line for line in body if line]


def looks_like_prose(block: list[str], rule: dict) -> bool:
    """A paragraph rather than a stanza: long lines that mostly run on from the line before
    (printed prose is wrapped at ~70 characters, so its lines open with lower-case words)."""
    limit = rule.get("prose_len", 58)
    if len(block) == 1:
        return len(block[0]) > rule.get("prose_one", 90)
    long = sum(len(line) >= limit for line in block[:-1])
    lower = sum(bool(re.match(r"[\"'“‘(]?[a-z]", line)) for line in block[1:])
    return long >= 0.7 * (len(block) - 1) and lower >= 0.3 * (len(block) - 1)


def stanzas(body: list[str], rule: dict, dropped: list[str]) -> list[list[str]]:
    blocks, block = [], []
    for line in body + [""]:
        if line:
            block.append(line)
        elif block:
            blocks.append(block)
            block = []
    kept = []
    for block in blocks:
        if rule.get("prose", True) and looks_like_prose(block, rule):
            dropped.append("\n".join(block))
        else:
            kept.append(block)
    return kept


# Headings of a book's apparatus, never of a poem.
_NOT_A_POEM = re.compile(r"^(THE )?(CONTENTS|TABLE OF CONTENTS|INDEX|GLOSSARY|NOTES?|PREFACE|"
                         r"INTRODUCTION|INTRODUCTORY|FOREWORD|TRANSCRIBER|ERRATA|LIST OF|"
                         r"APPENDIX|FOOTNOTES?|BIBLIOGRAPHY|ADVERTISEMENT|PREFATORY|"
                         r"BY WAY OF INTRODUCTION|INDEX OF FIRST LINES|FIRST LINES|"
                         r"CORRIGENDA|ILLUSTRATIONS|PUBLISHER)\b", re.I)


def join_across_pictures(text: str) -> str:
    """Belloc's pictures cut verse lines in two ("Though very fat", picture, "he almost ran"):
    join the halves where the line before the picture is a fragment or the one after it is
    set in to where the first half ended."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        window = lines[i:i + 5]
        if (len(window) == 5 and window[0].strip() and not window[1].strip()
                and window[2].strip() == "[Illustration]" and not window[3].strip()
                and window[4].strip() and (len(window[0].strip()) <= 20
                                           or _indent(window[4]) >= _indent(window[0]) + 4)):
            lines[i + 4] = window[0].rstrip() + " " + window[4].strip()
            i += 4
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def _v_for_u(title: str) -> str:
    """Crane letters his titles with V for U (THE MVLBERRY BVSH): V before a consonant is U."""
    title = re.sub(r"\bIACK\b", "JACK", title)
    return re.sub(r"V(?=[^AEIOUY\s'’,.])|V(?=[\s'’]|$)(?<=[A-Z]V)", "U", title)


def poems_of(text: str, rule: dict, dropped: list[str]) -> list[str]:
    """A book's raw text as songs in the lyrics format."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = cut(strip_gutenberg(text), rule)
    words = ("Illustration", "Footnote", "Transcriber's Note", "Transcriber’s Note",
             "Transcriber's note", "Note", "Frontispiece", "Sidenote") + tuple(
                 rule.get("bracket_drop", ()))
    if rule.get("illus_titles"):  # the song's title is printed in its picture
        text = re.sub(r"^\[Illustration: ((?:Ye )?[^\]a-z]+?)\.?\] *$",
                      lambda m: "\n\n\n" + _v_for_u(m.group(1)) + "\n", text, flags=re.M)
    if rule.get("illus_inline"):  # a picture set inside a verse line: the line goes on after
        text = join_across_pictures(text)
    if rule.get("illus_breaks"):  # a picture between two rhymes: the rhymes are two songs
        text = re.sub(r"^ *\[Illustration[^\]]*\] *$", "\n\n\n", text, flags=re.M)
    text = remove_brackets(text, words, tuple(rule.get("bracket_keep", ())))
    text = remove_note_blocks(text)
    lines = [clean_line(line, rule) for line in rejoin(text.split("\n"), rule)]
    songs = []
    for title, body in segment(lines, rule):
        if title and _NOT_A_POEM.search(title):
            dropped.append(f"[section {title!r}] " + " / ".join(body_text(body)[:3]))
            continue
        kept = stanzas(body, rule, dropped)
        if len(kept) > 1 and all(len(block) == 1 for block in kept):
            # lines of dialogue left from a prose sketch whose paragraphs were dropped
            dropped.append(f"[fragments under {title!r}] " + " / ".join(b[0] for b in kept))
            continue
        min_lines = rule.get("min_lines", 2)
        if sum(len(b) for b in kept) < min_lines:
            if kept:
                dropped.append(f"[short piece under {title!r}] " + " / ".join(kept[0]))
            continue
        title = tidy_title(title) if title else rule.get("default_title")
        if not title:
            title = kept[0][0].rstrip(" ,;:.-—!?")
        if _NOT_A_POEM.search(title):
            dropped.append(f"[section {title!r}]")
            continue
        title = rule.get("title_prefix", "") + title
        for part, (first, last) in enumerate(parts(kept, rule), 1):
            label = f"{title} (part {part})" if last - first < len(kept) else title
            songs.append("# " + label + "\n\n" + "\n\n".join("\n".join(b)
                                                                for b in kept[first:last]))
    return songs


def parts(kept: list[list[str]], rule: dict) -> list[tuple[int, int]]:
    """A long poem (a canto, a play-length narrative) as parts of about `part_chars`
    characters, cut between stanzas: a song model learns from song-sized pieces. Each part
    keeps the poem's title with "(part N)", which songgen's validation cut keeps together."""
    size = rule.get("part_chars", 6000)
    total = sum(len(line) + 1 for b in kept for line in b)
    if total <= 2 * size:
        return [(0, len(kept))]
    cuts, start, chars = [], 0, 0
    for i, block in enumerate(kept):
        chars += sum(len(line) + 1 for line in block)
        if chars >= size and i + 1 < len(kept):
            cuts.append((start, i + 1))
            start, chars = i + 1, 0
    if start < len(kept):
        cuts.append((start, len(kept)))
    return cuts


# -- the corpus ----------------------------------------------------------------------------

def child_songs(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [s.strip("\n") for s in re.split(r"\n\n\n+", text) if s.strip()]


def build(raw: Path, out: Path, only: list[int] | None = None, show: bool = False) -> None:
    train: list[str] = []
    held: dict[int, list[str]] = {}
    counts = {}
    for book in BOOKS:
        number = book["ebook"]
        if only and number not in only:
            continue
        dropped: list[str] = []
        if book["file"] == CHILD_FILE:
            if number != BOOKS[[b["file"] for b in BOOKS].index(CHILD_FILE)]["ebook"]:
                continue  # the five volumes are one file, added once
            songs = child_songs(raw / CHILD_FILE)
        else:
            path = raw / book["file"]
            if not path.exists():
                raise SystemExit(f"error: {path} is missing; see basecorpus/README.md for "
                                 "how to get the raw books")
            songs = poems_of(path.read_text(encoding="utf-8"), book.get("rule", {}), dropped)
        text = "\n\n\n".join(songs) + "\n"
        counts[number] = (len(text), len(songs))
        if show:
            print(f"== {number} {book['title']}: {len(songs)} poems, {len(text)} chars, "
                  f"{len(dropped)} blocks dropped", file=sys.stderr)
            (out / "debug").mkdir(parents=True, exist_ok=True)
            (out / "debug" / f"{number}.txt").write_text(text, encoding="utf-8")
            (out / "debug" / f"{number}.dropped").write_text("\n\n".join(dropped),
                                                             encoding="utf-8")
        if number in HELDOUT:
            held[number] = songs
        else:
            train.extend(songs)
    if only:
        return
    held_out_songs(out, held, train, counts)
    verse = ("\n\n\n".join(train) + "\n").encode("utf-8")
    (out / "verse.txt.xz").write_bytes(lzma.compress(verse, preset=9 | lzma.PRESET_EXTREME))
    write_sources(out, counts, len(verse.decode("utf-8")), len(train))
    print(f"wrote {out / 'verse.txt.xz'}: {len(train)} poems, {len(verse):,} bytes",
          file=sys.stderr)


def song_key(song: str) -> str:
    """A song's title as the held-out check compares titles: lower case, letters only, without
    a trailing "(part N)" or "(Child 10A)"."""
    title = re.sub(r"\s*\([^()]*\)\s*$", "", song.split("\n", 1)[0][2:])
    return re.sub(r"[^a-z]+", " ", title.lower()).strip()


def held_out_songs(out: Path, held: dict, train: list[str], counts: dict) -> None:
    """Write the held-out books, less any song whose title is also a training song's (the
    same ballad in another collection), so that they stay songs the model never saw."""
    seen = {song_key(song) for song in train}
    (out / "heldout").mkdir(parents=True, exist_ok=True)
    for number, songs in held.items():
        kept = [song for song in songs if song_key(song) not in seen]
        if len(kept) < len(songs):
            print(f"{number}: left out {len(songs) - len(kept)} songs also in the training "
                  "books", file=sys.stderr)
        text = "\n\n\n".join(kept) + "\n"
        counts[number] = (len(text), len(kept))
        (out / "heldout" / f"{number}.txt").write_text(text, encoding="utf-8")


def write_sources(out: Path, counts: dict, chars: int, poems: int) -> None:
    child = [b for b in BOOKS if b["file"] == CHILD_FILE]
    rows = []
    for book in BOOKS:
        number = book["ebook"]
        split = "held out" if number in HELDOUT else "train"
        if book["file"] == CHILD_FILE:
            size = "with vols I-V: " + "{:,} chars, {:,} texts".format(
                *counts[child[0]["ebook"]]) if number == child[0]["ebook"] else "(in vol. I's row)"
        else:
            size = "{:,} chars, {:,} poems".format(*counts[number])
        rows.append(f"| {number} | {book['title']} | {book['author']} | {book['kind']} | "
                    f"{split} | {size} |")
    (out / "SOURCES.md").write_text(SOURCES_HEAD.format(chars=chars, poems=poems) + "\n".join(
        rows) + "\n", encoding="utf-8")


SOURCES_HEAD = """# Sources of the base corpus

Every book is a Project Gutenberg eBook, public domain in the USA (Project Gutenberg's
licence; its header, licence and trademark text are removed here). `verse.txt.xz` holds the
training books: {chars:,} characters, {poems:,} poems. Held-out books are in `heldout/`, never in
the training text. Sizes are of the cleaned text (characters, poems). The five Child volumes
are the ballad texts of `../shared/data/child_ballads.txt`, cleaned before (its SOURCES.md).

| ebook | title | author | kind | split | cleaned size |
|---|---|---|---|---|---|
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", type=Path, help="folder of the raw books (NNNNN-0.txt) and "
                        "child_ballads.txt")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--only", type=int, nargs="*", help="clean only these ebooks (a check)")
    parser.add_argument("--show", action="store_true",
                        help="write each book's text and dropped blocks under OUT/debug")
    args = parser.parse_args(argv)
    if not args.raw.is_dir():
        raise SystemExit(f"error: {args.raw} is not a folder; give the folder of raw books")
    build(args.raw, args.out, args.only, args.show)


if __name__ == "__main__":
    main()
