"""What the checkpoint checksum costs: per save and per load, for the default model (2x256)
and a 2x1024 one, each with AdamW's state (what `songgen train` writes).

Every round times, one after the other in this process: the checksum alone
(`content_checksum`), a whole save (`checkpoint.save`: checksum, torch.save, fsync, rename) and
a whole load (`checkpoint.load`: torch.load, checksum verified, schema checked). The table
gives medians and the checksum's share of each.

    python benchmarks/bench_checksum.py [--rounds 5]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from songgen import checkpoint as ckpt
from songgen.config import ModelConfig, TrainConfig
from songgen.lyrics import EOS
from songgen.model import CharLSTM


def trained_checkpoint(hidden: int) -> ckpt.Checkpoint:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=98, hidden_size=hidden)
    model = CharLSTM(config)
    optimizer = torch.optim.AdamW(model.parameters())
    x = torch.randint(0, 98, (4, 16))
    F.cross_entropy(model(x)[0].flatten(0, 1), x.flatten()).backward()
    optimizer.step()  # so that the file holds both Adam moments, as a real one does
    vocab = [EOS] + [chr(32 + i) for i in range(97)]
    return ckpt.Checkpoint(model_config=config, vocab=vocab, model_state=model.state_dict(),
                           optimizer_state=optimizer.state_dict(), train_config=TrainConfig(),
                           step=1)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print("| model | file | checksum | save (with it) | load (with it) | share of save | share of load |")
    print("|---|---|---|---|---|---|---|")
    for hidden in (256, 1024):
        checkpoint = trained_checkpoint(hidden)
        state = checkpoint.to_dict()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "last.pt"
            sums, saves, loads = [], [], []
            for _ in range(args.rounds):
                sums.append(timed(lambda: ckpt.content_checksum(state)))
                saves.append(timed(lambda: ckpt.save(checkpoint, path)))
                loads.append(timed(lambda: ckpt.load(path)))
            size = path.stat().st_size / 1e6
        s, sv, ld = (statistics.median(v) for v in (sums, saves, loads))
        print(f"| 2x{hidden} | {size:.1f} MB | {s * 1000:.0f} ms | {sv * 1000:.0f} ms | "
              f"{ld * 1000:.0f} ms | {s / sv:.0%} | {s / ld:.0%} |")


if __name__ == "__main__":
    main()
