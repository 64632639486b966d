#!/usr/bin/env bash
# Everything songgen checks on a CUDA GPU, in one run of about 7 minutes, for a machine whose
# time is short: the CUDA tests, the benchmark suite on the GPU, and 30-second training runs on
# tinyshakespeare (target: validation <= 1.43 nats/char, best.pt kept at the minimum).
#
#   benchmarks/gpu_session.sh DATA OUT
#
# DATA holds child_ballads.txt and tinyshakespeare.txt (../shared/data); results go to OUT
# (gpu.txt, tests.txt, bench.md, shakespeare.md and the logs). Needs torch with CUDA, click,
# tqdm, numpy, pytest and hypothesis installed; songgen runs from this checkout.
set -u
data=$(cd "${1:?give the data folder}" && pwd)
out=$(mkdir -p "${2:?give the output folder}" && cd "$2" && pwd)
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} SONGGEN_BENCH_DATA=$data

python3 -c 'import torch; print("torch", torch.__version__, "|", torch.cuda.get_device_name(),
            "| bf16:", torch.cuda.is_bf16_supported(), "| GPUs:", torch.cuda.device_count())' \
    | tee "$out/gpu.txt"

echo "== tests" >&2
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_sample.py \
    tests/test_train.py > "$out/tests.txt" 2>&1
tail -3 "$out/tests.txt"

echo "== benchmarks" >&2
timeout 240 python3 benchmarks/run.py --device cuda --quick --only train,sample \
    > "$out/bench.md" 2> "$out/bench.log"
cat "$out/bench.md"

echo "== tinyshakespeare, 30 s each" >&2
# Candidate GPU settings; the README documents the best. The file has no song breaks, so it is
# one song and validation is its last 10%, cut at a line boundary.
configs=(
    "--layers 2 --hidden-size 1024 --embed-dim 128 --dropout 0.4 --batch-size 128 --seq-len 128 --lr 2e-3"
    "--layers 3 --hidden-size 768 --embed-dim 128 --dropout 0.35 --batch-size 128 --seq-len 128 --lr 2e-3"
    "--layers 2 --hidden-size 1536 --embed-dim 128 --dropout 0.5 --batch-size 256 --seq-len 100 --lr 2e-3"
)
{
    echo "| settings | steps | best validation (nats/char) | at step | at second | best.pt step |"
    echo "|---|---|---|---|---|---|"
} > "$out/shakespeare.md"
for i in "${!configs[@]}"; do
    ck="$out/shakespeare-$i"
    # shellcheck disable=SC2086  # the settings are words on purpose
    timeout 90 python3 -m songgen train "$data/tinyshakespeare.txt" ${configs[$i]} \
        --time-limit 30s --patience 0 --eval-every 50 --keep-last 0 --checkpoint-dir "$ck" \
        > "$out/shakespeare-$i.log" 2>&1
    python3 - "$ck" "${configs[$i]}" >> "$out/shakespeare.md" <<'EOF'
import json, sys, torch
folder, settings = sys.argv[1], sys.argv[2]
rows = [json.loads(line) for line in open(f"{folder}/metrics.jsonl")]
best = min(rows, key=lambda r: r["val_loss"])
saved = torch.load(f"{folder}/best.pt", map_location="cpu", weights_only=True)["step"]
print(f"| `{settings}` | {rows[-1]['step']} | {best['val_loss']:.4f} | {best['step']} | "
      f"{best['elapsed']:.1f} | {saved} |")
EOF
    rm -f "$ck"/*.pt  # large; the metrics stay
done
cat "$out/shakespeare.md"
