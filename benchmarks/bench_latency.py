"""Start-up latency of the command line, in cold (fresh) processes.

  help           wall time of `songgen --help`; reference: a bare click program printing its
                 help (`python -c` importing click), so the ratio shows songgen's own start-up
  first char     `songgen sample` on the CPU with a small untrained checkpoint: time from
                 starting the process until the first byte arrives on its stdout (a pipe);
                 reference: a plain script that imports torch, loads the same checkpoint with
                 torch.load(weights_only=True), builds nn modules and prints one sampled
                 character. songgen flushes at each line end, so its first byte is its first line.

Sides alternate, rounds rotated.

    python benchmarks/bench_latency.py [--quick]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from bench_sample import build_checkpoint, vocab_chars  # noqa: E402

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


def run(device: str = "cpu", quick: bool = False, rounds: int | None = None,
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


if __name__ == "__main__":
    common.standalone(run, "command-line latency: songgen vs bare programs")
