"""What in a text is not lyrics. A first try is often a raw book (a Project Gutenberg download):
a licence header and footer, page numbers, bracketed notes and illustrations, footnotes and
their marks, music marks, index and contents pages, prose; or a text far too small to learn
from. A model trained on them writes them back.

`Scanner` finds them a piece of text at a time, as the lyrics reader streams a file. Only the
Project Gutenberg licence header and footer are taken out (they are unmistakable and never
lyrics), and that is said; the rest is found, counted and shown with its file and line, never
dropped unseen. `check_text` reads a whole corpus and `Checked.cleaned` gives a copy of each
file without any of it, for the person to look at before training on it (`songgen check`).
"""

from __future__ import annotations

import re
import shlex
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SonggenWarning

MIN_CHARS = 1_000   # characters of lyrics below which a model can learn next to nothing
EXAMPLES = 3        # places shown per kind in a training run's warning

# What each kind is called: one, many.
KINDS = {
    "page": ("page number", "page numbers"),
    "note": ("bracketed note or illustration", "bracketed notes and illustrations"),
    "footnote": ("footnote", "footnotes"),
    "mark": ("footnote mark", "footnote marks"),
    "music": ("music mark", "music marks"),
    "index": ("index or contents page", "index and contents pages"),
    "entry": ("line ending in a page number", "lines ending in a page number"),
    "prose": ("prose paragraph", "prose paragraphs"),
}

# The Project Gutenberg markers: where the book starts, and where the licence after it does.
_PG_START = re.compile(r"^[ \t]*\*{3}[ \t]*START OF (?:THE|THIS) PROJECT GUTENBERG E(?:BOOK|TEXT)"
                       r"[^\n]*(?:\n|$)", re.M | re.I)
_PG_END = re.compile(r"^[ \t]*(?:\*{3}[ \t]*END OF (?:THE|THIS) PROJECT GUTENBERG E(?:BOOK|TEXT)"
                     r"|End of (?:the )?Project Gutenberg(?:'s)? )", re.M | re.I)
# Patterns of whole lines start with the line end before them (the text scanned starts with
# one): the regex engine finds a pattern's first literal fast, and tries it only there.
# Whole lines: a page number alone ("12", "- 12 -", "[Pg 12]", "{12}", "Page 12").
_PAGE = re.compile(r"\n[ \t]*(?:\d{1,4}|-[ \t]*\d{1,4}[ \t]*-|\[(?:Pg\.?|Page|p\.)?[ \t]*\d{1,4}\]"
                   r"|\{\d{1,4}\}|(?:Page|Pg\.?|p\.)[ \t]*\d{1,4})[ \t]*$", re.M | re.I)
# A bracketed note, from its opening line to the line that closes it.
_NOTE = re.compile(r"\n[ \t]*\[(?:Illustration|Footnote|Note|Sidenote|Transcriber|Decoration|"
                   r"Music|Blank Page|Editor)", re.M | re.I)
# A footnote: a line that starts with its mark, "[1] Old ed. ...", to the next blank line.
_FOOTNOTE = re.compile(r"\n[ \t]*\[\d{1,3}\][ \t]+\S", re.M)
# Marks inside a line: a footnote mark after a word ("word[3]"), a music mark ("[1/8]"), a page
# mark ("[Pg 12]").
# (Each pattern starts with a literal, which the regex engine looks for fast: most lyrics hold
# none of them.)
_MARK = re.compile(r"\[(?:\d{1,3}|[*\u2020\u2021])\]")  # after a word: see _marks
_MUSIC = re.compile(r"\[\d{1,2}/\d{1,2}\]")
_PAGE_MARK = re.compile(r"\[Pg\.?[ \t]*\d{1,4}\]|\{\d{1,4}\}", re.I)
# Index and contents: a heading, whose page runs to the next song break (two blank lines), and
# entries that end in a page number after dot leaders or a wide gap ("Come away .... 61").
_INDEX = re.compile(r"\n[ \t]*(?:(?:table of )?contents|(?:general |alphabetical )?index"
                    r"(?: (?:of|to) [^\n]{1,40})?)\.?[ \t]*$", re.M | re.I)
_ENTRY = re.compile(r"(?:   |\.\.)[ \t.]*\d{1,4}[ \t]*$", re.M)  # after text: see _entries
_PAGE_END = re.compile(r"\S[^\n]*\n(?:[ \t]*\n){2,}")
# Prose: three or more lines in a row of 60+ characters (a wrapped paragraph), or one line of
# 300+ (an unwrapped one).
WRAPPED, UNWRAPPED = 60, 300
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


@dataclass
class Found:
    """One kind of thing found: how many, and where (line numbers from 1, with the line)."""

    count: int = 0
    places: list = field(default_factory=list)  # (line, text)


@dataclass
class FileReport:
    """What a file holds besides lyrics."""

    path: str
    licence: list = field(default_factory=list)  # (first line, last line) of each part taken out
    found: dict = field(default_factory=dict)    # kind -> Found
    drop: set = field(default_factory=set)       # line numbers a clean copy leaves out
    chars: int = 0                               # characters kept (the lyrics, as far as known)
    lines: int = 0


class Scanner:
    """One file's text, a piece at a time (each piece whole lines, in order): takes out the
    Project Gutenberg licence header and footer and finds the rest. `every`: keep every place
    (for a clean copy), else the first EXAMPLES of each kind."""

    def __init__(self, path, every: bool = False, find: bool = True):
        self.report = FileReport(str(path))
        self.every, self.find = every, find  # find: look for more than the licence
        self.line = 1          # the number of the piece's first line
        self.licence = None    # the line a licence part started at, while in one
        self.first = True
        self.open_line = False  # whether the text read so far ends inside a line

    def feed(self, text: str) -> str:
        """The piece without the licence parts; what else it holds is noted."""
        kept, start = [], 0
        if self.first and _pg(text):
            begin, end = _PG_START.search(text), _PG_END.search(text)
            if begin is not None and (end is None or begin.start() < end.start()):
                self.licence = self.line  # the header: from the start to the marker
        self.first = False
        while True:
            marker = (_PG_START if self.licence is not None else _PG_END).search(text, start) \
                if self.licence is not None or _pg(text) else None
            if self.licence is None:
                stop = len(text) if marker is None else marker.start()
                kept.append(self._scan(text, start, stop))
                if marker is None:
                    break
                self.licence = self._line_at(text, marker.start())
                start = marker.start()
            else:
                if marker is None:
                    break  # the licence goes on to the next piece
                self._licence_until(self._line_at(text, marker.end() - 1))
                start = marker.end()
        self.line += text.count("\n")
        self.open_line = bool(text) and not text.endswith("\n")
        return "".join(kept)

    def finish(self) -> FileReport:
        self.report.lines = self.line - (0 if self.open_line else 1)
        if self.licence is not None:  # a footer runs to the end of the file
            self._licence_until(self.report.lines)
        return self.report

    def _line_at(self, text: str, pos: int) -> int:
        return self.line + text.count("\n", 0, pos)

    def _licence_until(self, last: int) -> None:
        first, self.licence = self.licence, None
        self.report.licence.append((first, max(first, last)))

    def _scan(self, text: str, start: int, stop: int) -> str:
        """Note what text[start:stop] holds besides lyrics; returns that text."""
        part = text[start:stop]
        if not self.find:
            return part
        self.report.chars += len(part.strip())
        if not part.strip():
            return part
        base = self._line_at(text, start)
        lines = part.split("\n") if self.every else None
        taken: set[int] = set()  # lines of `part` (from 0) already counted as something

        def note(kind: str, first: int, last: int) -> None:
            if first in taken:
                return
            span = range(first, last + 1)
            taken.update(span)
            found = self.report.found.setdefault(kind, Found())
            found.count += 1
            if self.every or len(found.places) < EXAMPLES:
                shown = lines[first] if lines else part.split("\n", first + 1)[first]
                found.places.append((base + first, _clip(shown.strip())))
            if self.every:
                self.report.drop.update(base + i for i in span)

        at = _LineCounter(part)
        lead = "\n" + part  # match.start() in it is where the line starts in `part`
        for match in _NOTE.finditer(lead):
            close = part.find("]", match.end() - 1)
            first, last = at(match.start()), at(close) if close >= 0 else at(match.start())
            note("note", first, min(last, first + 40))
        for match in _INDEX.finditer(lead):
            end = _PAGE_END.search(part, match.end() - 1)
            note("index", at(match.start()), at(end.start()) if end else at(len(part)))
        for match in _PAGE.finditer(lead):
            line = at(match.start())
            note("page", line, line)
        for start in _entries(part):
            line = at(start)
            note("entry", line, line)
        for match in _FOOTNOTE.finditer(lead):
            end = _BLANK_LINE.search(part, match.start())
            first = at(match.start())
            note("footnote", first, min(at(end.start()) if end else at(len(part)), first + 20))
        all_lines = lines if lines is not None else part.split("\n")
        for first, last in _long_runs(all_lines):
            if _reads_as_prose(all_lines[first:last + 1]):
                while last + 1 < len(all_lines) and all_lines[last + 1].strip():
                    last += 1  # the paragraph's last, shorter line
                note("prose", first, last)
        for kind, pattern in (("mark", _MARK), ("music", _MUSIC), ("page", _PAGE_MARK)):
            for match in (_marks(part) if kind == "mark" else pattern.finditer(part)):
                line = at(match.start())
                if line in taken and kind != "mark":
                    continue
                found = self.report.found.setdefault(kind, Found())
                found.count += 1
                if self.every or len(found.places) < EXAMPLES:
                    found.places.append((base + line, _before(part, match)))
        return part


def _clip(line: str, most: int = 40) -> str:
    """A line shown as a place: its start, and "..." where it goes on (at a word's end)."""
    if len(line) <= most:
        return line
    cut = line[:most]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip() + "..."


def _before(part: str, match, most: int = 30) -> str:
    """A mark inside a line shown as a place: the words before it and the mark, with "..."
    where the line starts earlier (never half a word)."""
    line_start = part.rfind("\n", 0, match.start()) + 1
    start = max(line_start, match.start() - most)
    shown = part[start:match.end()]
    if start > line_start:  # cut inside the line: drop the word cut in two
        shown = "..." + (shown.split(" ", 1)[1] if " " in shown[:-1] else shown)
    return shown.strip()


class _LineCounter:
    """The line (from 0) of a position in a text, counted on from the last position asked
    about: each pass over a text asks in order, so each costs one count of its line ends."""

    def __init__(self, text: str):
        self.text, self.pos, self.line = text, 0, 0

    def __call__(self, pos: int) -> int:
        if pos < self.pos:
            self.pos, self.line = 0, 0
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


def _pg(text: str) -> bool:
    """Whether a text may hold a Project Gutenberg marker (a fast look before the regexes)."""
    return "utenberg" in text or "UTENBERG" in text


def _marks(text: str):
    """The footnote marks of a text: those right after a word or a stop, not a space."""
    return (m for m in _MARK.finditer(text) if m.start() and not text[m.start() - 1].isspace()
            and text[m.start() - 1] != "[")


def _entries(text: str):
    """Where lines that end in a page number after dot leaders or a wide gap start (the line
    has words before the gap)."""
    for match in _ENTRY.finditer(text):
        start = text.rfind("\n", 0, match.start()) + 1
        if any(c.isalpha() for c in text[start:match.start()]):
            yield start


def _long_runs(lines: list[str]):
    """(first, last) of each run of three or more lines of WRAPPED+ characters, and of each
    line of UNWRAPPED+ characters."""
    run = None
    for i, n in enumerate(map(len, lines + [""])):
        if n >= WRAPPED:
            run = i if run is None else run
            continue
        if run is not None:
            if i - run >= 3:
                yield run, i - 1
            else:
                yield from ((j, j) for j in range(run, i) if len(lines[j]) >= UNWRAPPED)
        run = None


def _reads_as_prose(lines: list[str]) -> bool:
    """Long lines that run on into each other (most breaks fall inside a sentence: the next line
    starts in lower case or the line ends without a stop), or one line too long for a song."""
    if len(lines) == 1:
        return True
    breaks = len(lines) - 1
    running = sum(1 for a, b in zip(lines, lines[1:])
                  if b.lstrip()[:1].islower() or a.rstrip()[-1:].isalpha())
    return running * 2 > breaks


# -- a corpus's report, for training and for `songgen check` ---------------------------------

def _ranges(parts: list) -> str:
    return ", ".join(f"{a:,}-{b:,}" if a != b else f"{a:,}" for a, b in parts)


def licence_line(report: FileReport) -> str | None:
    """What was taken out of a file as the Project Gutenberg licence (None: nothing)."""
    if not report.licence:
        return None
    which = ("header and footer" if len(report.licence) == 2 and report.licence[0][0] == 1
             else "header" if report.licence[0][0] == 1 and len(report.licence) == 1
             else "footer" if len(report.licence) == 1 else "parts")
    many = "" if len(report.licence) == 1 and report.licence[0][0] == report.licence[0][1] else "s"
    return (f"{report.path}: left out the Project Gutenberg licence {which} (line{many} "
            f"{_ranges(report.licence)}): it is not lyrics")


def describe_found(reports: list[FileReport], examples: int = EXAMPLES) -> list[str]:
    """One line per kind found in the files: how many, and the first places, file:line."""
    out = []
    for kind, (one, many) in KINDS.items():
        places = [(r.path, line, text) for r in reports if kind in r.found
                  for line, text in r.found[kind].places]
        count = sum(r.found[kind].count for r in reports if kind in r.found)
        if not count:
            continue
        shown = "; ".join(f"{path}:{line} {text!r}" for path, line, text in places[:examples])
        more = ", ..." if count > min(examples, len(places)) else ""
        out.append(f"{count:,} {one if count == 1 else many} ({shown}{more})")
    return out


def too_small(path, chars: int) -> str | None:
    if chars >= MIN_CHARS:
        return None
    return (f"{path} holds only {chars:,} characters of lyrics: far too little to learn from "
            f"(a model needs {MIN_CHARS:,} at the very least, and a megabyte or more for real "
            "verses)")


def warn(path, reports: list[FileReport]) -> None:
    """A training run's (or scoring's) warnings about a corpus: the licence parts taken out,
    and what else is not lyrics, with where and the way to see and clean it. (A text too small
    is said in the training header: `too_small`.)"""
    for report in reports:
        line = licence_line(report)
        if line:
            warnings.warn(line, SonggenWarning)
    found = describe_found(reports)
    if found:
        warnings.warn(f"{path} holds what looks like more than lyrics, trained on as it is: "
                      f"{'; '.join(found)}; see every place with: songgen check "
                      f"{shlex.quote(str(path))} (and -o cleaned.txt writes a copy without "
                      "them)", SonggenWarning)


# -- songgen check: the whole report, and a clean copy ---------------------------------------

@dataclass
class Checked:
    """A corpus checked whole: each file's report, with its text (to clean)."""

    path: str
    reports: list
    texts: list

    @property
    def chars(self) -> int:
        return sum(r.chars for r in self.reports)

    @property
    def left_out(self) -> int:
        """Lines a clean copy leaves out (licence parts included)."""
        return sum(len(r.drop) + sum(b - a + 1 for a, b in r.licence) for r in self.reports)

    def clean(self) -> bool:
        return not any(r.licence or r.found for r in self.reports) and \
            too_small(self.path, self.chars) is None

    def cleaned(self, index: int) -> str:
        """The text of the `index`-th file without anything found: the licence parts, the
        lines found, and the marks inside lines. Where lines go, the blank lines around them
        close up to the longer of the two runs, so that a song or stanza break stays one."""
        report, lines = self.reports[index], self.texts[index].split("\n")
        gone = set(report.drop)
        for a, b in report.licence:
            gone.update(range(a, b + 1))
        marked = self._marked(report)
        out: list[str] = []
        number = 0
        while number < len(lines):
            if number + 1 not in gone:
                line = lines[number]
                if number + 1 in marked:
                    for mark in reversed(list(_marks(line))):
                        line = line[:mark.start()] + line[mark.end():]
                    line = _PAGE_MARK.sub("", _MUSIC.sub("", line)).rstrip()
                out.append(line)
                number += 1
                continue
            before = _blank_run(out)
            while number < len(lines) and number + 1 in gone:
                number += 1
            after = 0
            while number + after < len(lines) and number + after + 1 not in gone and \
                    not lines[number + after].strip():
                after += 1
            out += [""] * max(0, max(before, after) - before)
            number += after
        return "\n".join(out).strip("\n") + "\n"

    @staticmethod
    def _marked(report: FileReport) -> set:
        return {line for kind in ("mark", "music", "page") if kind in report.found
                for line, _ in report.found[kind].places}


def _blank_run(lines: list[str]) -> int:
    n = 0
    while n < len(lines) and not lines[-1 - n].strip():
        n += 1
    return n


def check_text(path: str | Path, encoding: str = "utf-8") -> Checked:
    """Read every file of a corpus whole and find what is not lyrics in it, each place kept."""
    from .reading import read_text, text_files

    reports, texts = [], []
    for file in text_files(path):
        text = read_text(file, encoding)
        scanner = Scanner(file, every=True)
        scanner.feed(text)
        reports.append(scanner.finish())
        texts.append(text)
    return Checked(str(path), reports, texts)
