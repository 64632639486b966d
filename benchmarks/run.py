"""Run the benchmark suite and print one markdown table (progress goes to stderr).

    python benchmarks/run.py [--device cpu|cuda] [--quick] [--only train,sample,corpus,latency]

Every line is songgen against a reference measured side by side in this run; see README.md.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_corpus  # noqa: E402
import bench_latency  # noqa: E402
import bench_sample  # noqa: E402
import bench_train  # noqa: E402
import common  # noqa: E402

SUITES = {"train": bench_train.run, "sample": bench_sample.run, "corpus": bench_corpus.run,
          "latency": bench_latency.run}


def main() -> None:
    parser = common.arg_parser(__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SUITES),
                        help="comma-separated subset of: " + ", ".join(SUITES))
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SUITES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: CUDA is not available here")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    start = common.timer()
    rows = []
    for name in chosen:
        began = common.timer()
        rows += SUITES[name](device=args.device, quick=args.quick, rounds=args.rounds,
                             threads=args.threads)
        common.log(f"{name}: {common.timer() - began:.0f} s")
    gpu = f", {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else ""
    print(f"songgen benchmarks ({'quick' if args.quick else 'full'}): {platform.machine()}, "
          f"{torch.get_num_threads()} torch threads{gpu}, torch {torch.__version__}, "
          f"Python {platform.python_version()}; took {common.timer() - start:.0f} s\n")
    print(common.table(rows))
    missed = [r for r in rows if r.met is False]
    if missed:
        print(f"\n{len(missed)} line(s) below target.")


if __name__ == "__main__":
    main()
