"""What steering songs into shape costs when sampling: `generate(shape="song")` against
`generate(shape="free")`, the same model and seed, in this one process, interleaved.

The model is untrained (random weights, fixed seed) over the bundled demo songs' characters,
with their song shape recorded; its end-of-song logit is lowered so that free songs run to the
length and shaped songs end where the shape ends them. chars/s counts the characters returned.

    python benchmarks/bench_guide.py [--rounds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from songgen import checkpoint as ckpt  # noqa: E402
from songgen.trained import load_checkpoint  # noqa: E402
from songgen.config import ModelConfig  # noqa: E402
from songgen.generate import generate  # noqa: E402
from songgen.lyrics import demo_corpus, load_corpus  # noqa: E402
from songgen.model import CharLSTM  # noqa: E402

CASES = [(256, 1, 1500), (512, 1, 1000), (256, 64, 600), (512, 64, 300)]


def build(folder: Path, hidden: int) -> Path:
    corpus = load_corpus(demo_corpus())
    torch.manual_seed(0)
    model = CharLSTM(ModelConfig(vocab_size=len(corpus.vocab), hidden_size=hidden))
    with torch.no_grad():
        model.head.bias[0] -= 8.0
    path = folder / f"m{hidden}.pt"
    ckpt.save(ckpt.Checkpoint(model_config=model.config, vocab=corpus.vocab.chars,
                              model_state=model.state_dict(), shape=corpus.shape.to_dict()), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| model | songs | shaped chars/s | free chars/s | shaped / free |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for hidden, songs, length in CASES:
            trained = load_checkpoint(build(Path(tmp), hidden), device="cpu")
            speed = {"song": [], "free": []}
            for r in range(args.rounds):
                for shape in (("song", "free") if r % 2 == 0 else ("free", "song")):
                    start = time.perf_counter()
                    out = generate(trained, num_songs=songs, length=length, seed=r,
                                   temperature=1.0, shape=shape)
                    speed[shape].append(sum(s.chars for s in out) /
                                        (time.perf_counter() - start))
            ratio = statistics.median(a / b for a, b in zip(speed["song"], speed["free"]))
            print(f"| 2x{hidden} | {songs} | {statistics.median(speed['song']):,.0f} | "
                  f"{statistics.median(speed['free']):,.0f} | {ratio:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
