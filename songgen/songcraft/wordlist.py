"""Which frequent English words a song may not use: names and offensive words.

The sampler allows the corpus's words and wordfreq's most frequent English words
(songgen/songcraft/measures.py). wordfreq lowercases and counts the web, so its list holds names
("kamal", "saab"), brands ("ipod") and vulgarity beside ordinary words. Two lists in
songgen/songcraft/wordlist_data/ take them out of the English list (never out of the corpus's words):

- names.txt: the words of wordfreq's list that a spelling dictionary does not hold in lower
  case: names of people and places, brands, acronyms, web slang ("rose", "bill" and "hope" are
  in it in lower case, so they stay; "kamal" is not, "saab" only as "Saab"). It is built by
  `build_names` from SCOWL's size-50 American and British lists (the Debian packages wamerican
  and wbritish; SCOWL is Copyright 2000-2011 Kevin Atkinson, free to use and redistribute),
  less ordinary.txt: words the dictionary capitalises or lacks that songs use all the same
  (days, months, "christmas", "ooh"). "I" and its contractions stay, and so do a contraction
  of an ordinary word ("there'll") and a dropped g ("goin").
- offensive.txt: slurs and sexual or scatological vulgarity, written for this project. Mild
  words of old songs ("hell", "damn", "bastard", "ass") are not in it.

Rebuild names.txt after a change of wordfreq or of ENGLISH_RANK:
`python -m songgen.songcraft.wordlist 30000 /usr/share/dict/american-english /usr/share/dict/british-english`.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

DATA = Path(__file__).with_name("wordlist_data")


def read_list(name: str) -> list[str]:
    """A list's words, apart by blanks; '#' starts a comment."""
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [w for line in lines for w in line.split("#", 1)[0].split()]


def names_rank() -> int:
    """How many of wordfreq's words names.txt was built from (its first line says)."""
    first = (DATA / "names.txt").read_text(encoding="utf-8").split("\n", 1)[0]
    return int(first.rsplit(" ", 1)[1])


def _forms(word: str) -> tuple:
    # "fuckin'" and "shit's" are their words' forms.
    stem = word.partition("'")[0]
    return (word, stem) + ((stem + "g",) if stem.endswith("in") else ())


@functools.lru_cache(maxsize=1)
def _lists() -> tuple:
    return frozenset(read_list("names.txt")), frozenset(read_list("offensive.txt"))


def unsung(word: str) -> bool:
    """Whether an English word is a name or offensive (see the module's docstring)."""
    names, offensive = _lists()
    return word in names or any(form in offensive for form in _forms(word))


def ordinary(word: str, lower: set, keep: set) -> bool:
    """Whether a dictionary with these lower-case words, and the keep list, make it a word."""
    if word in lower or word in keep or word == "i":
        return True
    stem, apostrophe, _ = word.partition("'")
    if apostrophe:
        return stem != word and ordinary(stem, lower, keep)
    return word.endswith("in") and word + "g" in lower


def build_names(rank: int, dictionaries: list[str]) -> list[str]:
    """names.txt's lines: the first `rank` words of wordfreq that are not ordinary."""
    from wordfreq import top_n_list

    lower = set()
    for path in dictionaries:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            # "iPod" and "Saab" are names; only an all-lower-case entry is an ordinary word.
            if line and line == line.lower():
                lower.add(line.replace("’", "'"))
    keep = set(read_list("ordinary.txt"))
    words = [w.replace("’", "'") for w in top_n_list("en", rank)]
    header = [f"# built from wordfreq's first words, as many as: {rank}",
              "# Names, brands, acronyms and web slang among them: the words not in a lower-case",
              "# dictionary entry (see songgen/songcraft/wordlist.py). Generated: do not edit."]
    return header + sorted({w for w in words if w.replace("'", "").isalpha()
                            and not ordinary(w, lower, keep)})


if __name__ == "__main__":
    lines = build_names(int(sys.argv[1]), sys.argv[2:])
    (DATA / "names.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines) - 3} names", file=sys.stderr)
