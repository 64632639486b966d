"""What checkpoints and evaluations cost: save time for the default model, and their share of
training time at the default evaluation interval (once an epoch: 834 steps on child_ballads).

    python benchmarks/bench_checkpoint.py [--steps-per-eval 834] [--val-chars 300380]
"""

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from songgen.checkpoint import Checkpoint, RunFolder
from songgen.config import ModelConfig, TrainConfig
from songgen.defaults import choose_lr
from songgen.devices import autocast, keep_freed_memory, resolve_precision
from songgen.evaluation import evaluate
from songgen.lyrics import EOS
from songgen.model import CharLSTM


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps-per-eval", type=int, default=834)
    parser.add_argument("--val-chars", type=int, default=300_380)
    args = parser.parse_args()
    keep_freed_memory()
    cfg, train_cfg = ModelConfig(vocab_size=98), TrainConfig()
    torch.manual_seed(0)
    model = CharLSTM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=choose_lr(cfg.hidden_size).value)
    x = torch.randint(0, 98, (train_cfg.batch_size, train_cfg.seq_len))

    cpu = torch.device("cpu")
    dtype = resolve_precision("auto", cpu)[0]  # what the defaults train in here (unprobed)

    def step():
        with autocast(cpu, dtype):
            logits, _ = model(x)
        loss = F.cross_entropy(logits.float().flatten(0, 1), x.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    step_times = []
    for _ in range(20):
        t = time.perf_counter()
        step()
        step_times.append(time.perf_counter() - t)
    vocab = [EOS] + [chr(32 + i) for i in range(cfg.vocab_size - 1)]
    checkpoint = Checkpoint(model_config=cfg, vocab=vocab, model_state=model.state_dict(),
                            optimizer_state=opt.state_dict(), train_config=train_cfg, step=1)
    save_times = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = RunFolder(tmp)
        for i in range(10):
            checkpoint.step = i + 1
            t = time.perf_counter()
            folder.save(checkpoint, best=True, keep=train_cfg.keep_last)
            save_times.append(time.perf_counter() - t)
        size = folder.last.stat().st_size / 1e6
    val = torch.randint(0, 98, (args.val_chars,), dtype=torch.uint8)
    t = time.perf_counter()
    evaluate(model, val, cpu, dtype, rows=128, chunk=256)
    eval_time = time.perf_counter() - t
    step_t, save_t = statistics.median(step_times), statistics.median(save_times)
    interval = args.steps_per_eval * step_t
    print(f"default model {cfg.layers}x{cfg.hidden_size} ({str(dtype).split('.')[1]}): checkpoint {size:.1f} MB, save "
          f"{save_t * 1000:.0f} ms (median of 10, fsync included); training step "
          f"{step_t * 1000:.0f} ms")
    print(f"every {args.steps_per_eval} steps: save = {save_t / interval:.2%} of training time, "
          f"validation over {args.val_chars:,} characters ({eval_time:.1f} s) = "
          f"{eval_time / interval:.2%}")


if __name__ == "__main__":
    main()
