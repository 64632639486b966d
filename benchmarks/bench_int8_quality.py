"""What int8 sampling weights cost: bits per character of a trained checkpoint on text,
teacher-forced one character at a time through the float and the int8 stepper, against the
full-sequence nn.LSTM forward.

    python benchmarks/bench_int8_quality.py CHECKPOINT TEXT [--chars 20000]
"""

import argparse
import math
import time

import torch

from songgen.trained import load_checkpoint
from songgen.lyrics import load_corpus
from songgen.stepper import StepState, Stepper


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("text")
    parser.add_argument("--chars", type=int, default=20_000)
    args = parser.parse_args()
    trained = load_checkpoint(args.checkpoint, device="cpu")  # the int8 stepper is CPU-only
    data = load_corpus(args.text, vocab=trained.vocab).val[: args.chars].long()
    cfg = trained.model.config
    with torch.no_grad():
        logits, _ = trained.model(data[None, :-1])
        reference = torch.nn.functional.cross_entropy(logits[0], data[1:]).item() / math.log(2)
    print(f"nn.LSTM forward: {reference:.4f} bits/char over {len(data) - 1:,} characters")
    for int8 in (False, True):
        stepper = Stepper(trained.model, int8=int8)
        zeros = torch.zeros(cfg.layers, 1, cfg.hidden_size)
        state = StepState((zeros, zeros.clone()))
        nats = 0.0
        start = time.perf_counter()
        for i in range(len(data) - 1):
            out = stepper.step(data[i:i + 1], state)
            nats -= torch.log_softmax(out, -1)[0, data[i + 1]].item()
        seconds = time.perf_counter() - start
        bpc = nats / (len(data) - 1) / math.log(2)
        print(f"stepper {'int8' if int8 else 'fp32'}: {bpc:.4f} bits/char "
              f"({100 * (bpc / reference - 1):+.2f}%), {len(data) / seconds:,.0f} characters/s")


if __name__ == "__main__":
    main()
