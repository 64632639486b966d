"""songgen's benchmarks, one tool: `python -m benchmarks SUITE [options]` from the repository
root (or `python benchmarks SUITE ...`). `python -m benchmarks` lists the suites;
`python -m benchmarks SUITE --help` gives a suite's options. Results go to stdout (a markdown
table), progress to stderr. What each suite measures: benchmarks/README.md; the published
figures, each with the suite and options behind it: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name: (the file, the function in it that takes the suite's arguments, what it measures).
# A file without a function is run as its own program with the arguments.
SUITES = {
    "train": ("bench_train.py", "suite_train",
              "training chars/s: songgen against a bare PyTorch loop, side by side"),
    "busy": ("bench_train.py", "suite_busy",
             "training speed alone, two runs at once, and beside a busy process"),
    "quality": ("bench_train.py", "suite_quality",
                "char-rnn's defaults in a bare loop: the curve songgen's quality is set against"),
    "sample": ("bench_sample.py", "suite_sample",
               "sampling chars/s against bare samplers; the shape guide's cost; start-up"),
    "songs": ("bench_songs.py", "suite_songs",
              "trained models: shaped songs against free sampling; songs per second"),
    "corpus": ("bench_corpus.py", "suite_corpus",
               "corpus loading MB/s and memory against a bare numpy reader"),
    "cache": ("bench_corpus.py", "suite_cache",
              "the corpus cache: first and cached loads, resume start-up, torchrun memory"),
    "defaults": ("bench_defaults.py", "suite_defaults",
                 "the training defaults against hand-set configurations, same time each"),
    "exact": ("bench_train.py", "suite_exact",
              "resumed runs against straight ones, torchrun against one process, the bf16 probe"),
    "songcraft": ("bench_songs.py", "suite_songcraft",
                  "rhyme, chorus and real words against the corpus and free sampling; speed"),
    "singable": ("bench_songs.py", "suite_singable",
                 "songs a singer could sing: scansion, endings, words, rhyme, chorus, length"),
    "styles": ("bench_songs.py", "suite_styles",
               "one model on two styles beside single-style models: classifier, loss, speed"),
    "base": ("bench_base.py", "suite_base",
             "the bundled base model: held-out loss of small collections from it and from "
             "scratch, real words, sampling with no run"),
    "inside": ("bench_inside.py", "suite_inside",
               "the course's questions: sequence length, LSTM against a window MLP, temperature"),
    "gpu": ("gpu_session.sh", None,
            "everything checked on a CUDA GPU in one timed session: gpu DATA OUT"),
}


def usage() -> str:
    width = max(map(len, SUITES))
    lines = [f"  {name:<{width}}  {what}" for name, (file, _, what) in SUITES.items()
             if (HERE / file).exists()]
    return ("usage: python -m benchmarks SUITE [options]   (SUITE --help for its options)\n\n"
            "suites:\n" + "\n".join(lines))


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUITES or not (HERE / SUITES[name][0]).exists():
        print(f"unknown suite {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    file, function, _ = SUITES[name]
    if function is None:
        runner = ["bash"] if file.endswith(".sh") else [sys.executable]
        return subprocess.call([*runner, str(HERE / file), *rest])
    sys.path.insert(0, str(HERE))
    import importlib

    module = importlib.import_module(file[:-len(".py")])
    getattr(module, function)(rest, prog=f"python -m benchmarks {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
