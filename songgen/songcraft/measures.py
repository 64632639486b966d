"""What a song is made of beyond its shape: rhyme, a chorus, real words. Measured here, from the
corpus when a run is created and from any text (the benchmark, `info`, the tests), and used by
the sampler (songgen/writing/craft.py) to steer.

- Rhyme: two words rhyme when they differ and share their sound from the last stressed vowel
  on, as the CMU pronouncing dictionary says (through the `pronouncing` package; the MIT-licensed
  lookup over the BSD-licensed CMU data). A word it does not know (a name, dialect, another
  language) falls back to a spelling rule: its last vowel group and what follows ("night" ->
  "ight"). A stanza rhymes when two adjacent or alternate line ends rhyme; its pattern names
  each of its first four lines by the line it rhymes with (AABB, ABAB, XAXA: X rhymes with none).
- Chorus: a song has one when it repeats a line of four or more words; where: the stanza that
  first holds the repeated line, and how many stanzas later it comes back.
- Real words: those of the corpus (its most frequent MAX_WORDS) or the ENGLISH_RANK most
  frequent English words (wordfreq's list, Apache-2.0 code, CC BY-SA 4.0 data), less spellings
  no one sings (no vowel: "pdf", "http"; a letter three times: "ieee"; two letters outside the
  most frequent few hundred: "il"; no pronunciation in the CMU dictionary, or one said letter
  by letter: "hiv", "lmfao"), less names, brands and offensive words (songgen/songcraft/wordlist.py: a
  word no dictionary holds in lower case, "kamal", "saab"; slurs, vulgarity). The cut was
  measured (before names left): to 30,000 the list is ordinary words with some common names;
  past it, names and acronyms grow ("tannehill", "mhc") while the demo
  songs' words it adds are few (97.6% of them within 30,000, 98.8% within 50,000). The
  pronouncing dictionary is not a word list: most of its 130,000 words are rare names
  ("congdon", "driggers").
- Scansion: the share of lines of stanza 2 or later within SCAN_TOLERANCE syllables of the line
  at the same place in the song's first stanza of as many lines (syllables: the CMU
  dictionary's, else by spelling); the sampler writes to it (songgen/writing/stanzas.py).
- Endings: how the corpus's songs and titles end (the class of their last character: a word,
  or the mark itself), so that a song ends, and a title closes, as theirs do.

`Measures` is what a checkpoint keeps (plain numbers, strings and lists, so that it loads with
`torch.load(weights_only=True)`).
"""

from __future__ import annotations

import bisect
import functools
import re
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field

from .shape import end_class
from .wordlist import unsung

MEASURES_VERSION = 1
MAX_WORDS = 30_000          # corpus words kept in a checkpoint (the most frequent)
ENGLISH_RANK = 30_000       # English words allowed beside the corpus's (see the docstring)
SHORT_RANK = 400            # a two-letter English word must be among this many
SAMPLE_CHARS = 5_000_000    # a run measures at most this much of its corpus
WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_VOWELS = re.compile(r"[aeiouyàáâäãåèéêëìíîïòóôöõùúûüæœø]+[^aeiouyàáâäãåèéêëìíîïòóôöõùúûüæœø]*$")
_BLANKS = re.compile(r"\n(?:[ \t]*\n)+")
PATTERN = re.compile(r"[A-WYZ]?[A-Z]{1,7}")  # checked further in check_pattern
RHYMES = ("auto", "off")
CHORUSES = ("auto", "off")


@functools.lru_cache(maxsize=1)
def _cmu() -> dict[str, str] | None:
    """word -> first pronunciation, or None when the `pronouncing` package is missing."""
    try:
        import pronouncing
    except ImportError:
        return None
    pronouncing.init_cmu()
    out: dict[str, str] = {}
    for word, phones in pronouncing.pronunciations:
        out.setdefault(word, phones)
    return out


def words_of(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in WORD.findall(text)]


def last_word(line: str) -> str | None:
    found = WORD.findall(line)
    return found[-1].lower().replace("’", "'") if found else None


@functools.lru_cache(maxsize=200_000)
def rhyme_key(word: str) -> str:
    """The sound (or, for an unknown word, the spelling) two rhyming words share."""
    cmu = _cmu()
    phones = cmu.get(word) if cmu else None
    if phones:
        parts = phones.split()
        stressed = [i for i, p in enumerate(parts) if p[-1] in "12"]
        start = stressed[-1] if stressed else max(
            (i for i, p in enumerate(parts) if p[-1].isdigit()), default=0)
        return "/" + " ".join(p.rstrip("012") for p in parts[start:])
    found = _VOWELS.search(word)
    return found.group(0) if found else word[-3:]


_GROUPS = re.compile(r"[aeiouy]+")


@functools.lru_cache(maxsize=200_000)
def syllables(word: str) -> int:
    """A word's syllables: the CMU dictionary's count, else a spelling rule (vowel groups, a
    final silent e not counted)."""
    cmu = _cmu()
    phones = cmu.get(word) if cmu else None
    if phones:
        return sum(p[-1].isdigit() for p in phones.split())
    word = word.lower().replace("'", "")
    groups = len(_GROUPS.findall(word))
    if word.endswith("e") and not word.endswith(("le", "ee")) and groups > 1:
        groups -= 1
    return max(1, groups)


SCAN_TOLERANCE = 2  # syllables a line may differ from its model line and still scan


def line_syllables(line: str) -> int:
    return sum(syllables(w) for w in words_of(line))


def scansion(songs) -> tuple[int, int]:
    """(lines that scan, lines compared): a line of stanza 2 or later is compared with the line
    at the same place in the song's first stanza of that many lines, and scans when their
    syllables differ by 2 at most."""
    close = compared = 0
    for song in songs:
        found = song_scansion(stanzas_of(song))
        close, compared = close + found[0], compared + found[1]
    return close, compared


def song_scansion(stanzas: list[list[str]]) -> tuple[int, int]:
    """`scansion` of one song's stanzas (stanzas_of)."""
    close = compared = 0
    first: dict[int, list[int]] = {}
    for lines in stanzas:
        counts = [line_syllables(line) for line in lines]
        model = first.setdefault(len(lines), counts)
        if model is counts:
            continue
        compared += len(counts)
        close += sum(abs(a - b) <= SCAN_TOLERANCE for a, b in zip(counts, model))
    return close, compared


def rhymes(a: str | None, b: str | None) -> bool:
    return bool(a and b) and a != b and rhyme_key(a) == rhyme_key(b)


def pattern_of(ends: list[str | None]) -> str:
    """Letters for line ends: lines that rhyme share a letter (A, B, ... in order of first
    appearance); a line that rhymes with none is X."""
    groups: list[int] = []
    for i, word in enumerate(ends):
        groups.append(next((groups[j] for j in range(i) if rhymes(ends[j], word)), i))
    sizes = Counter(groups)
    letters, out = {}, []
    for g in groups:
        if sizes[g] == 1:
            out.append("X")
        else:
            out.append(letters.setdefault(g, "ABCDEFGHIJKLMNOPQRSTUVW"[len(letters) % 23]))
    return "".join(out)


def stanza_rhymes(ends: list[str | None]) -> bool:
    """At least one rhyming pair of adjacent or alternate line ends."""
    return any(rhymes(ends[i], ends[j]) for i in range(len(ends))
               for j in (i + 1, i + 2) if j < len(ends))


def stanzas_of(song: str) -> list[list[str]]:
    """The lyric lines of each stanza (the title line not counted)."""
    text = song
    if text.startswith("# "):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    out = []
    for stanza in _BLANKS.split(text.strip("\n")):
        lines = [line for line in stanza.split("\n") if line.strip()]
        if lines:
            out.append(lines)
    return out


def check_pattern(rhyme: str) -> str:
    """`rhyme` as the sampler takes it: auto, off or a pattern like AABB; else a plain error."""
    from ..errors import ConfigError

    value = rhyme.strip()
    if value.lower() in RHYMES:
        return value.lower()
    value = value.upper()
    if not (2 <= len(value) <= 8 and value.isalpha() and value.isascii()
            and any(value.count(c) > 1 for c in set(value) - {"X"})):
        raise ConfigError(f"unknown rhyme pattern {rhyme!r}; use auto, off or 2 to 8 letters "
                          "where lines that rhyme share a letter and X rhymes with none "
                          "(AABB, ABAB, XAXA)")
    return value


def analyse(song: str) -> dict:
    """One song's craft, as JSON output tells it: its stanzas' patterns, which lyric lines (from
    1) rhyme with which (adjacent or alternate), and where its repeated lines are."""
    stanzas = stanzas_of(song)
    pairs, patterns, number = [], [], 0
    for lines in stanzas:
        ends = [last_word(line) for line in lines]
        patterns.append(pattern_of(ends[:4]))
        for i in range(len(ends)):
            for j in (i + 1, i + 2):
                if j < len(ends) and rhymes(ends[i], ends[j]):
                    pairs.append([number + i + 1, number + j + 1])
        number += len(lines)
    repeats = _repeats(stanzas)
    chorus = [index + 1 for index, lines in enumerate(stanzas)
              if any(_key(line) in repeats for line in lines)]
    return {"patterns": patterns, "rhymes": pairs, "chorus_stanzas": chorus,
            "repeated_lines": sorted(repeats.values()),
            "syllables": [[line_syllables(line) for line in lines] for lines in stanzas]}


def _key(line: str) -> str:
    return " ".join(words_of(line))


def _repeats(stanzas: list[list[str]]) -> dict[str, str]:
    """Lines of four or more words that come more than once: normalised -> as written."""
    seen: Counter = Counter()
    shown: dict[str, str] = {}
    for lines in stanzas:
        for line in lines:
            key = _key(line)
            if len(key.split()) >= 4:
                seen[key] += 1
                shown.setdefault(key, line.strip())
    return {k: shown[k] for k, n in seen.items() if n > 1}


@dataclass
class Measures:
    """A corpus's rhyme, chorus and word habits."""

    songs: int = 0
    stanzas: int = 0                 # stanzas of two or more lines
    rhyming: int = 0                 # of them, those with a rhyming pair
    patterns: dict = field(default_factory=dict)  # 4-line (or 2-3-line) pattern -> stanzas
    repeat_songs: int = 0            # songs repeating a line of four or more words
    chorus_at: int = 1               # the stanza (from 0) where a repeated line first comes
    chorus_gap: int = 2              # stanzas until it comes back
    words: int = 0                   # words read
    dictionary_words: int = 0        # of them, in the dictionary
    vocabulary: list = field(default_factory=list)  # the corpus's most frequent words
    # Kept since issue #33; None in a record written before (that rule is then off).
    song_ends: dict | None = None    # end class (end_class) of each song's last line -> songs
    title_ends: dict | None = None   # end class of each title -> titles
    scan_lines: list | None = None   # [lines that scan, lines compared] (`scansion`)

    @property
    def rhyme_rate(self) -> float:
        return self.rhyming / self.stanzas if self.stanzas else 0.0

    @property
    def scan_rate(self) -> float | None:
        """The share of lines that scan (None where not measured or nothing compared)."""
        if not self.scan_lines or not self.scan_lines[1]:
            return None
        return self.scan_lines[0] / self.scan_lines[1]

    @property
    def repeat_rate(self) -> float:
        return self.repeat_songs / self.songs if self.songs else 0.0

    def summary(self) -> str:
        top = ", ".join(f"{p} {n / max(self.stanzas, 1):.0%}" for p, n in
                        sorted(self.patterns.items(), key=lambda kv: -kv[1])[:4])
        return (f"{self.rhyme_rate:.0%} of {self.stanzas:,} stanzas rhyme ({top}); "
                f"{self.repeat_rate:.0%} of {self.songs:,} songs repeat a line (a chorus, "
                f"first in stanza {self.chorus_at + 1}, back {self.chorus_gap} later); "
                f"{len(self.vocabulary):,} words kept"
                + ("" if self.scan_rate is None else f"; {self.scan_rate:.0%} of lines scan"))

    def to_dict(self) -> dict:
        return {"version": MEASURES_VERSION, **asdict(self)}

    def endings(self, which: str) -> frozenset | None:
        """The end classes ("a" for a word, else the mark) that at least ENDING_SHARE of the
        corpus's songs (which="song") or titles ("title") end with; None where not measured."""
        counts = self.song_ends if which == "song" else self.title_ends
        if not counts:
            return None
        total = sum(counts.values())
        return frozenset(c for c, n in counts.items() if n >= ENDING_SHARE * total)

    def ending_shares(self, which: str) -> dict | None:
        """Each end class of `endings(which)` with the share of the corpus's songs (titles)
        that end so; None where not measured."""
        counts = self.song_ends if which == "song" else self.title_ends
        found = self.endings(which)
        if found is None:
            return None
        total = sum(counts.values())
        return {c: counts[c] / total for c in sorted(found)}

    @classmethod
    def from_dict(cls, data) -> "Measures | None":
        """The measures a checkpoint kept; None for none or an unusable record."""
        if not isinstance(data, dict) or data.get("version") != MEASURES_VERSION:
            return None
        try:
            values = {k: data[k] if k not in OPTIONAL else data.get(k)
                      for k in cls.__dataclass_fields__}
            for k in OPTIONAL:
                if values[k] is not None and not _optional_ok(k, values[k]):
                    return None
            ints = [values[k] for k in ("songs", "stanzas", "rhyming", "repeat_songs",
                                        "chorus_at", "chorus_gap", "words",
                                        "dictionary_words")]
            if (not all(isinstance(v, int) and v >= 0 for v in ints)
                    or not isinstance(values["patterns"], dict)
                    or not all(isinstance(p, str) and isinstance(n, int)
                               for p, n in values["patterns"].items())
                    or not isinstance(values["vocabulary"], list)
                    or not all(isinstance(w, str) for w in values["vocabulary"])):
                return None
            return cls(**values)
        except (KeyError, TypeError):
            return None


OPTIONAL = ("song_ends", "title_ends", "scan_lines")
ENDING_SHARE = 0.02   # an end class this rare in the corpus is not one its songs end with


def _optional_ok(name: str, value) -> bool:
    if name == "scan_lines":
        return (isinstance(value, list) and len(value) == 2
                and all(isinstance(n, int) and n >= 0 for n in value) and value[0] <= value[1])
    return (isinstance(value, dict) and all(isinstance(k, str) and isinstance(n, int)
                                            and n >= 0 for k, n in value.items()))


def measure(songs) -> Measures:
    """Measure songs (an iterable of song texts, titles included)."""
    m = Measures()
    patterns: Counter = Counter()
    counts: Counter = Counter()
    firsts, gaps = [], []
    song_ends: Counter = Counter()
    title_ends: Counter = Counter()
    scan = [0, 0]
    cmu = _cmu() or {}
    for song in songs:
        m.songs += 1
        if song.startswith("# "):
            title_ends[end_class(song.split("\n", 1)[0][2:]) or "a"] += 1
        stanzas = stanzas_of(song)
        if stanzas:
            song_ends[end_class(stanzas[-1][-1])] += 1
        close, compared = song_scansion(stanzas)
        scan = [scan[0] + close, scan[1] + compared]
        for lines in stanzas:
            words = words_of("\n".join(lines))
            counts.update(words)
            m.words += len(words)
            m.dictionary_words += sum(w in cmu for w in words)
            if len(lines) < 2:
                continue
            ends = [last_word(line) for line in lines]
            m.stanzas += 1
            m.rhyming += stanza_rhymes(ends)
            patterns[pattern_of(ends[:4])] += 1
        repeats = _repeats(stanzas)
        if repeats:
            m.repeat_songs += 1
            where = [i for i, lines in enumerate(stanzas)
                     if any(_key(line) in repeats for line in lines)]
            firsts.append(where[0])
            if len(where) > 1:
                gaps.append(where[1] - where[0])
    m.patterns = dict(patterns.most_common(40))
    m.song_ends, m.title_ends, m.scan_lines = dict(song_ends), dict(title_ends), scan
    if firsts:
        m.chorus_at = int(statistics.median_low(firsts))
    if gaps:
        m.chorus_gap = max(1, int(statistics.median_low(gaps)))
    m.vocabulary = [w for w, _ in counts.most_common(MAX_WORDS)]
    return m


def measure_ids(ids, chars: list[str]) -> Measures:
    """Measure an encoded corpus (ids in a vocabulary whose symbol 0 ends a song), at most its
    first SAMPLE_CHARS characters."""
    import numpy as np

    data = np.asarray(ids[:SAMPLE_CHARS])
    table = np.array(chars, dtype=object)
    text = "".join(table[data].tolist())
    return measure(song for song in text.split(chars[0]) if song.strip())


class Words:
    """The allowed words, sorted, for prefix questions: which letters may follow a prefix, and
    whether the prefix is itself a word. Answers are cached per prefix."""

    def __init__(self, words):
        self.words = sorted(set(w for w in words if w))

    def is_word(self, word: str) -> bool:
        i = bisect.bisect_left(self.words, word)
        return i < len(self.words) and self.words[i] == word

    @functools.lru_cache(maxsize=100_000)
    def next_letters(self, prefix: str) -> frozenset:
        out, i, n = set(), bisect.bisect_left(self.words, prefix), len(prefix)
        while i < len(self.words) and self.words[i].startswith(prefix):
            word = self.words[i]
            if len(word) == n:
                i += 1
                continue
            c = word[n]
            out.add(c)
            # Jump past every word that continues with c.
            i = bisect.bisect_left(self.words, prefix + c + "\U0010ffff", i)
        return frozenset(out)


_SUNG = re.compile(r"[aeiouy]")
_TRIPLE = re.compile(r"(.)\1\1")


@functools.lru_cache(maxsize=1)
def english_words() -> tuple:
    """The most frequent English words people sing (see the module's docstring); none when
    the `wordfreq` package is missing."""
    try:
        from wordfreq import top_n_list
    except ImportError:
        return ()
    cmu = _cmu() or {}
    out = []
    for rank, word in enumerate(top_n_list("en", ENGLISH_RANK)):
        word = word.replace("’", "'")
        phones = cmu.get(word.replace("'", "")) or cmu.get(word)
        if (not WORD.fullmatch(word) or not _SUNG.search(word) or _TRIPLE.search(word)
                or (len(word) == 1 and word not in "aio")
                or (len(word) == 2 and rank >= SHORT_RANK) or unsung(word)
                # Unsayable (no pronunciation) or said letter by letter: "hiv", "nsa", "lmfao".
                or (cmu and (phones is None or (len(word) > 1 and sum(
                    p[-1].isdigit() for p in phones.split()) >= len(word))))):
            continue
        out.append(word)
    return tuple(out)


@functools.lru_cache(maxsize=4)
def _words_for(vocabulary: tuple) -> Words:
    return Words(list(vocabulary) + list(english_words()))


def allowed_words(measures: Measures) -> Words:
    """The corpus's words and the frequent English ones."""
    return _words_for(tuple(measures.vocabulary))


@functools.lru_cache(maxsize=4)
def _corpus_words(vocabulary: tuple) -> Words:
    return Words(vocabulary)


def corpus_words(measures: Measures) -> Words:
    return _corpus_words(tuple(measures.vocabulary))
