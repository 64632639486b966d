#!/usr/bin/env bash
# bf16 against fp32 training on the CPU at equal steps: the validation loss each reaches and
# its speed, one run after the other, pinned to 2 cores with 2 threads (the project's laptop
# kind of machine). ONEDNN_MAX_CPU_ISA limits oneDNN to AVX-512 BF16 (no AMX), so an Intel
# host with AMX stands in for a CPU that has AVX-512 BF16 alone (AMD EPYC Genoa and newer).
#
#   benchmarks/bf16_loss.sh STEPS OUT [ISA]      e.g. benchmarks/bf16_loss.sh 300 /tmp/bf16 AVX512_CORE_BF16
set -u
steps=${1:?steps}; out=${2:?output folder}; isa=${3:-}
mkdir -p "$out"
cd "$(dirname "$0")/.." || exit 2
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
[ -n "$isa" ] && export ONEDNN_MAX_CPU_ISA=$isa
pin=(); command -v taskset > /dev/null && pin=(taskset -c 0,1)
for precision in fp32 bf16; do
    rm -rf "$out/$precision"
    "${pin[@]}" python3 -m songgen train --device cpu --threads 2 --precision "$precision" \
        --steps "$steps" --eval-every "$steps" --patience 0 --keep-last 0 \
        --checkpoint-dir "$out/$precision" > "$out/$precision.log" 2>&1
    python3 - "$out/$precision" "$precision" <<'PY'
import json, sys
row = [json.loads(line) for line in open(sys.argv[1] + "/metrics.jsonl")][-1]
print(f"{sys.argv[2]}: step {row['step']}, validation {row['val_loss']:.4f} nats/char, "
      f"{row['chars_per_sec']:,} chars/s")
PY
    grep -h "^precision" "$out/$precision.log"
done
# What --precision auto picks here, and why (its header line).
"${pin[@]}" python3 -m songgen train --device cpu --steps 1 --checkpoint-dir "$out/auto" 2>&1 \
    | grep -h "^precision"
