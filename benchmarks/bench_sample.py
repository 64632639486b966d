"""The `sample` suite, in three parts (`--only sampling,guide,latency`; all by default).

`sampling`: throughput, songgen.writing.sampling.generate() against two plain PyTorch samplers, chars/s.

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

`guide`: what steering songs into shape costs, `generate(shape="song")` against
`generate(shape="free")`, the same model and seed, in this one process, interleaved. The models
are untrained over the bundled demo songs' characters, with their song shape recorded; the
end-of-song logit is lowered so that free songs run to the length and shaped songs end where
the shape ends them. chars/s counts the characters returned.

`latency`: start-up of the command line, in cold (fresh) processes (CPU only).

  help           wall time of `songgen --help`; reference: a bare click program printing its
                 help (`python -c` importing click), so the ratio shows songgen's own start-up
  first char     `songgen sample` on the CPU with a small untrained checkpoint: time from
                 starting the process until the first byte arrives on its stdout (a pipe);
                 reference: a plain script that imports torch, loads the same checkpoint with
                 torch.load(weights_only=True), builds nn modules and prints one sampled
                 character. songgen flushes at each line end, so its first byte is its first line.

    python -m benchmarks sample [--quick] [--device cpu|cuda] [--threads N] [--rounds N]
                                [--only sampling,guide,latency]
"""

from __future__ import annotations

import string
import subprocess
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
    from songgen.text.vocab import Vocab
    from songgen.text.reading import read_text

    try:
        return Vocab.from_text(read_text(common.corpus_path())).chars
    except SystemExit:  # no shared data: printable ASCII, space, newline, 98 symbols with EOS
        return Vocab.from_text(string.printable[:94] + " \n\u2019").chars


def build_checkpoint(folder: Path, layers: int, hidden: int, chars: list[str], device: str):
    """An untrained songgen checkpoint (the dict format songgen writes) that never ends songs."""
    import torch

    from songgen.run import checkpoint as ckpt
    from songgen.config import ModelConfig
    from songgen.model.lstm import CharLSTM

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

    from songgen import load_checkpoint
    from songgen.writing.sampling import generate

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


# -- guide: shaped against free sampling ---------------------------------------------------

GUIDE_CASES = [(256, 1, 1500), (512, 1, 1000), (256, 64, 600), (512, 64, 300)]


def guide_checkpoint(folder: Path, hidden: int) -> Path:
    """An untrained model over the demo songs' characters, with their shape recorded."""
    import torch

    from songgen.run import checkpoint as ckpt
    from songgen.config import ModelConfig
    from songgen.text.corpus import demo_corpus, load_corpus
    from songgen.model.lstm import CharLSTM

    corpus = load_corpus(demo_corpus())
    torch.manual_seed(0)
    model = CharLSTM(ModelConfig(vocab_size=len(corpus.vocab), hidden_size=hidden))
    with torch.no_grad():
        model.head.bias[0] -= 8.0
    path = folder / f"guide{hidden}.pt"
    ckpt.save(ckpt.Checkpoint(model_config=model.config, vocab=corpus.vocab.chars,
                              model_state=model.state_dict(), shape=corpus.shape.to_dict()), path)
    return path


def run_guide(device: str = "cpu", quick: bool = False, rounds: int | None = None,
              threads: int | None = None) -> list[common.Row]:
    import torch

    from songgen import load_checkpoint
    from songgen.writing.sampling import generate

    rounds = rounds or (3 if quick else 5)
    threads = torch.get_num_threads()
    rows = []
    with tempfile.TemporaryDirectory(prefix="songgen-bench-guide-") as tmp:
        for hidden, songs, length in GUIDE_CASES:
            length = length // 3 if quick else length
            trained = load_checkpoint(guide_checkpoint(Path(tmp), hidden), device=device)

            def side(shape):
                def measure(r):
                    common.sync(device)
                    start = common.timer()
                    out = generate(trained, num_songs=songs, length=length, seed=r,
                                   temperature=1.0, shape=shape)
                    return sum(s.chars for s in out) / (common.timer() - start)
                return measure

            generate(trained, num_songs=songs, length=20, seed=0, shape="song")  # warm-up
            res = common.interleave({"song": side("song"), "free": side("free")}, rounds)
            label = (f"2x{hidden}, {songs} song{'s' * (songs > 1)} x {length} chars, demo "
                     f"vocabulary and shape, temp 1, {threads} thread{'s' * (threads > 1)}, "
                     f"{device}")
            common.log(f"guide {label}: shaped {common.median(res['song']):,.0f}, free "
                       f"{common.median(res['free']):,.0f} chars/s")
            rows.append(common.ratio_row("sampling chars/s, shaped (`--shape song`) vs free",
                                         label, res["song"], res["free"], "chars/s",
                                         ref_name="free"))
    return rows


# -- latency: the command line's start-up ---------------------------------------------------

BARE_HELP = ("import click\n"
             "@click.group()\ndef cli():\n    'A CLI.'\n"
             "@cli.command()\n@click.option('--n', default=1)\ndef sample(n):\n    'Sample.'\n"
             "cli(['--help'])\n")

BARE_SAMPLE = """
import sys, torch
from torch import nn
state = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
cfg, w = state["model_config"], state["model_state"]
embed = nn.Embedding(cfg["vocab_size"], cfg["embed_dim"])
lstm = nn.LSTM(cfg["embed_dim"], cfg["hidden_size"], cfg["layers"], batch_first=True)
head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"])
for p, m in (("embed.", embed), ("lstm.", lstm), ("head.", head)):
    m.load_state_dict({k[len(p):]: v for k, v in w.items() if k.startswith(p)})
torch.manual_seed(1)
with torch.inference_mode():
    h, _ = lstm(embed(torch.zeros(1, 1, dtype=torch.long)))
    i = torch.multinomial(torch.softmax(head(h[:, -1]), -1), 1).item()
sys.stdout.write(state["vocab"][i]); sys.stdout.flush()
"""


def songgen_command() -> list[str]:
    script = Path(sys.executable).parent / "songgen"
    return [str(script)] if script.exists() else [sys.executable, "-m", "songgen"]


ENV: dict[str, str] = {}  # OMP_NUM_THREADS when --threads is given


def wall(cmd: list[str]) -> float:
    start = common.timer()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env=common.clean_env(ENV))
    return common.timer() - start


def first_byte(cmd: list[str]) -> float:
    """Seconds from starting `cmd` to the first byte on its stdout; the process is then killed."""
    start = common.timer()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=common.clean_env(ENV))
    try:
        got = proc.stdout.read(1)
        seconds = common.timer() - start
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    if not got:
        raise RuntimeError(f"{' '.join(cmd)} printed nothing (exit {proc.returncode})")
    return seconds


def run_latency(device: str = "cpu", quick: bool = False, rounds: int | None = None,
                threads: int | None = None) -> list[common.Row]:
    if threads:
        ENV["OMP_NUM_THREADS"] = str(threads)
    shown = f"{threads} thread{'s' * (threads > 1)}" if threads else "default threads"
    songgen = songgen_command()
    help_rounds = rounds or 5
    sample_rounds = rounds or 3
    rows = []
    common.log(f"latency: {' '.join(songgen)} --help, {help_rounds} rounds")
    wall(songgen + ["--help"])  # one untimed run warms the file cache
    res = common.interleave({"songgen": lambda r: wall(songgen + ["--help"]),
                             "bare": lambda r: wall([sys.executable, "-c", BARE_HELP])},
                            help_rounds)
    ours = common.median(res["songgen"])
    rows.append(common.ratio_row("`songgen --help` wall time (lower is better)",
                                 f"cold process, {shown}",
                                 res["songgen"], res["bare"], "s",
                                 absolute="< 0.3 s", absolute_met=ours < 0.3,
                                 ref_name="bare click program"))
    with tempfile.TemporaryDirectory(prefix="songgen-bench-latency-") as tmp:
        path = build_checkpoint(Path(tmp), 2, 128, vocab_chars(), "cpu")
        cmd = songgen + ["sample", "--checkpoint", str(path), "--device", "cpu", "--seed", "1",
                         "--temp", "1.0"]
        bare = [sys.executable, "-c", BARE_SAMPLE, str(path)]
        common.log(f"latency: songgen sample first byte, {sample_rounds} rounds")
        first_byte(cmd)  # warm the file cache (torch's libraries)
        res = common.interleave({"songgen": lambda r: first_byte(cmd),
                                 "bare": lambda r: first_byte(bare)}, sample_rounds)
    ours = common.median(res["songgen"])
    rows.append(common.ratio_row("`songgen sample` time to first character (lower is better)",
                                 "2x128 untrained checkpoint, CPU, cold process, stdout a "
                                 f"pipe, {shown}",
                                 res["songgen"], res["bare"], "s", absolute="< 2 s",
                                 absolute_met=ours < 2.0, ref_name="plain torch script"))
    return rows



PARTS = {"sampling": run, "guide": run_guide, "latency": run_latency}


def suite_sample(argv: list[str], prog: str | None = None) -> None:
    common.side_by_side(PARTS, "sampling: songgen against plain PyTorch samplers; the shape "
                        "guide's cost; start-up", argv, prog)


if __name__ == "__main__":
    suite_sample(sys.argv[1:])
