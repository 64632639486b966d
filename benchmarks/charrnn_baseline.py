"""The char-rnn defaults in a bare PyTorch loop, for the "better than char-rnn in 10 minutes" check.

char-rnn's defaults: 2-layer LSTM with 128 units, sequence length 50, batch 50, Adam at 2e-3,
gradient clipping at 5, no dropout. Same corpus, same train/validation split and the same
validation measure (songgen.evaluation.evaluate) as songgen, so the two curves compare directly.
The clock stops while validating, which favours the baseline slightly.

    python benchmarks/charrnn_baseline.py ../shared/data/child_ballads.txt --minutes 10
    songgen train ../shared/data/child_ballads.txt --time-limit 10m --patience 0   # songgen's curve
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import nn

from songgen.lyrics import load_corpus
from songgen.evaluation import evaluate


class CharRNN(nn.Module):
    def __init__(self, vocab: int, hidden: int = 128, layers: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, vocab)  # a learnt stand-in for char-rnn's one-hot input
        self.lstm = nn.LSTM(vocab, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        out, state = self.lstm(self.embed(x), state)
        return self.head(out), state


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("text")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--eval-seconds", type=float, default=60)
    args = parser.parse_args()
    corpus = load_corpus(args.text)
    torch.manual_seed(0)
    model = CharRNN(len(corpus.vocab))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    batch, seq = 50, 50
    cols = (len(corpus.train) - 1) // batch
    x_all = corpus.train[: batch * cols].view(batch, cols)
    y_all = corpus.train[1: batch * cols + 1].view(batch, cols)
    steps_per_epoch = cols // seq
    clock, step, state, next_eval = 0.0, 0, None, args.eval_seconds
    started = time.perf_counter()
    while clock < args.minutes * 60:
        i = step % steps_per_epoch
        if i == 0:
            state = None
        x = x_all[:, i * seq:(i + 1) * seq].long()
        y = y_all[:, i * seq:(i + 1) * seq].long()
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        state = (state[0].detach(), state[1].detach())
        step += 1
        clock = time.perf_counter() - started
        if clock >= next_eval or clock >= args.minutes * 60:
            paused = time.perf_counter()
            val = evaluate(model, corpus.val, torch.device("cpu"), rows=batch)
            started += time.perf_counter() - paused
            print(json.dumps({"elapsed": round(clock, 1), "step": step, "val_loss": round(val, 4)}),
                  flush=True)
            next_eval += args.eval_seconds


if __name__ == "__main__":
    main()
