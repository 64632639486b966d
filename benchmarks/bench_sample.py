"""Sampling throughput: songgen.sample.generate() against two plain PyTorch samplers, chars/s.

Models are untrained (random weights, fixed seed) with the end-of-song logit lowered by 50, so
no song ends early; the vocabulary is child_ballads.txt's (98 symbols). Songgen's figure counts
the characters it actually returned. References, with the very same weights:

  step loop    embedding -> nn.LSTM on one character with carried state -> linear -> softmax
               -> multinomial, for the same number of streams (inference mode; decoded to text
               at the end)
  window       like the Keras text-generation example: for every new character run the LSTM
               over the last 100 characters from a zero state; measured in steady state (the
               window already full) on few characters, because it is slow

On CUDA a fourth side, songgen eager, is songgen with its CUDA graph step switched off
(Stepper.cuda_graphs = False), and the 2x512 lines carry the absolute targets of issue #13
(one song >= 20,000 chars/s, 64 songs >= 200,000 chars/s on an H100-class GPU).

All sides run in this one process, interleaved, rounds rotated.

    python benchmarks/bench_sample.py [--quick] [--device cpu|cuda]
"""

from __future__ import annotations

import string
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

WINDOW = 100
EMBED = 64
# (layers, hidden): {songs: (length quick, length full)}; window characters are timed instead.
MODELS = {
    (2, 128): {1: (600, 2000), 8: (400, 1000), 64: (200, 500)},
    (2, 512): {1: (300, 1000), 8: (200, 600), 64: (100, 300)},
}
# songs: target ratio against the step loop, per model
TARGETS = {(2, 128): {1: 2.5, 8: 1.0, 64: 1.0}, (2, 512): {1: 10.0, 8: 1.0, 64: 1.0}}
# songs: chars/s songgen must reach on CUDA, per model
CUDA_TARGETS = {(2, 512): {1: 20_000, 64: 200_000}}


def vocab_chars() -> list[str]:
    from songgen.lyrics import Vocab, read_text

    try:
        return Vocab.from_text(read_text(common.corpus_path())).chars
    except SystemExit:  # no shared data: printable ASCII, space, newline, 98 symbols with EOS
        return Vocab.from_text(string.printable[:94] + " \n\u2019").chars


def build_checkpoint(folder: Path, layers: int, hidden: int, chars: list[str], device: str):
    """An untrained songgen checkpoint (the dict format songgen writes) that never ends songs."""
    import torch

    from songgen import checkpoint as ckpt
    from songgen.config import ModelConfig
    from songgen.model import CharLSTM

    torch.manual_seed(0)
    model = CharLSTM(ModelConfig(vocab_size=len(chars), embed_dim=EMBED, hidden_size=hidden,
                                 layers=layers))
    with torch.no_grad():
        model.head.bias[0] -= 50.0
    state = {"format": ckpt.FORMAT, "version": ckpt.VERSION,
             "model_config": model.config.to_dict(), "vocab": chars,
             "model_state": model.state_dict(), "step": 0}
    path = folder / f"untrained-{layers}x{hidden}.pt"
    ckpt.save(ckpt.Checkpoint.from_dict(state), path)
    return path


class Bare:
    """Plain nn modules holding the checkpoint's weights."""

    def __init__(self, path: Path, device: str):
        import torch
        from torch import nn

        state = torch.load(path, map_location="cpu", weights_only=True)
        cfg, weights = state["model_config"], state["model_state"]
        self.chars = state["vocab"]
        self.embed = nn.Embedding(cfg["vocab_size"], cfg["embed_dim"])
        self.lstm = nn.LSTM(cfg["embed_dim"], cfg["hidden_size"], cfg["layers"], batch_first=True)
        self.head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"])
        for prefix, module in (("embed.", self.embed), ("lstm.", self.lstm), ("head.", self.head)):
            own = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
            if own:
                module.load_state_dict(own)
        for module in (self.embed, self.lstm, self.head):
            module.to(device).eval()
        self.device = device

    def step_loop(self, n: int, length: int, seed: int) -> int:
        """Carried state, one character per call; returns the characters written."""
        import torch

        gen = torch.Generator(device=self.device).manual_seed(seed)
        with torch.inference_mode():
            x = torch.zeros(n, 1, dtype=torch.long, device=self.device)  # after end-of-song
            state, out = None, []
            for _ in range(length):
                h, state = self.lstm(self.embed(x), state)
                probs = torch.softmax(self.head(h[:, -1]), dim=-1)
                x = torch.multinomial(probs, 1, generator=gen)
                out.append(x)
            ids = torch.cat(out, dim=1).tolist()
        texts = ["".join(self.chars[i] for i in row) for row in ids]
        return sum(len(t) for t in texts)

    def window_loop(self, n: int, budget: float, seed: int, least: int = 3) -> tuple[int, float]:
        """Re-feed the last WINDOW characters from a zero state for each new character, until
        `budget` seconds (at least `least` characters); returns (characters, seconds)."""
        import torch

        gen = torch.Generator(device=self.device).manual_seed(seed)
        with torch.inference_mode():
            seq = torch.randint(1, len(self.chars), (n, WINDOW), generator=gen,
                                device=self.device)
            common.sync(self.device)
            start, made = common.timer(), 0
            while made < least or common.timer() - start < budget:
                h, _ = self.lstm(self.embed(seq[:, -WINDOW:]))
                probs = torch.softmax(self.head(h[:, -1]), dim=-1)
                seq = torch.cat([seq, torch.multinomial(probs, 1, generator=gen)], dim=1)
                made += 1
            seq.tolist()
            seconds = common.timer() - start
        return made * n, seconds


def run(device: str = "cpu", quick: bool = False, rounds: int | None = None,
        threads: int | None = None) -> list[common.Row]:
    import torch

    from songgen.trained import load_checkpoint
    from songgen.generate import generate

    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    rounds = rounds or (3 if quick else 5)
    budget = 0.4 if quick else 1.0
    chars = vocab_chars()
    rows = []
    with tempfile.TemporaryDirectory(prefix="songgen-bench-sample-") as tmp:
        for (layers, hidden), lengths in MODELS.items():
            path = build_checkpoint(Path(tmp), layers, hidden, chars, device)
            trained = load_checkpoint(path, device)
            stepper = trained.stepper()
            bare = Bare(path, device)
            for songs, (quick_len, full_len) in lengths.items():
                length = quick_len if quick else full_len
                label = (f"{layers}x{hidden}, {songs} song{'s' * (songs > 1)} x {length} chars, "
                         f"vocab {len(chars)}, temp 1, {threads} thread{'s' * (threads > 1)}, "
                         f"{device}")

                def songgen_side(r, graphs=True):
                    stepper.cuda_graphs = graphs
                    common.sync(device)
                    start = common.timer()
                    made = generate(trained, num_songs=songs, length=length, temperature=1.0,
                                    seed=100 + r)
                    seconds = common.timer() - start
                    stepper.cuda_graphs = True
                    return sum(len(s.text) for s in made) / seconds

                def step_side(r):
                    common.sync(device)
                    start = common.timer()
                    made = bare.step_loop(songs, length, seed=100 + r)
                    common.sync(device)
                    return made / (common.timer() - start)

                def window_side(r):
                    made, seconds = bare.window_loop(songs, budget, seed=100 + r)
                    return made / seconds

                # Warm-up: the first calls of each shape set up kernels.
                generate(trained, num_songs=songs, length=20, temperature=1.0, seed=1)
                bare.step_loop(songs, 20, seed=1)
                sides = {"songgen": songgen_side, "step": step_side, "window": window_side}
                cuda = device.startswith("cuda")
                if cuda:
                    sides["eager"] = lambda r: songgen_side(r, graphs=False)
                    generate(trained, num_songs=songs, length=20, temperature=1.0, seed=1)
                res = common.interleave(sides, rounds)
                eager = (f", songgen eager {common.median(res['eager']):,.0f}" if cuda else "")
                common.log(f"sample {label}: songgen {common.median(res['songgen']):,.0f}"
                           f"{eager}, step loop {common.median(res['step']):,.0f}, window "
                           f"{common.median(res['window']):,.0f} chars/s"
                           + (f"; CUDA graph: {stepper.cuda_graph_error or 'used'}"
                              if cuda else ""))
                if cuda:
                    goal = CUDA_TARGETS.get((layers, hidden), {}).get(songs)
                    met = None if goal is None else common.median(res["songgen"]) >= goal
                    rows.append(common.ratio_row(
                        "sampling chars/s vs songgen's eager step (CUDA graph off)", label,
                        res["songgen"], res["eager"], "chars/s",
                        absolute=f">= {goal:,} chars/s" if goal else "", absolute_met=met))
                rows.append(common.ratio_row("sampling chars/s vs bare step loop", label,
                                             res["songgen"], res["step"], "chars/s",
                                             target=TARGETS[(layers, hidden)][songs]))
                rows.append(common.ratio_row("sampling chars/s vs window re-feeding", label,
                                             res["songgen"], res["window"], "chars/s"))
    return rows


if __name__ == "__main__":
    common.standalone(run, "sampling throughput: songgen vs plain PyTorch samplers")
