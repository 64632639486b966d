#!/usr/bin/env bash
# Everything songgen checks on a CUDA GPU, in one run of at most GPU_SESSION_SECONDS (default
# 420), for a machine whose time is short. Each part runs under `timeout` and its own deadline
# share; a part that fails or times out does not stop the others; parts that no longer fit
# the deadline are skipped (and say so).
#
#   python -m benchmarks gpu DATA OUT        (or: bash benchmarks/gpu_session.sh DATA OUT)
#
# DATA holds child_ballads.txt and tinyshakespeare.txt (e.g. shared/data); results go to OUT:
#   summary.md        everything below in one file (read this first)
#   facts.txt         GPU, torch, CUDA, host CPU model and its bf16 flags
#   deps.txt          which Python packages were missing and what was done about it
#   parts.txt         each part's exit status and seconds (124 = timed out)
#   tests.log         the CUDA tests (test_cuda.py, test_stepper_graph.py, test_sample.py)
#   sample.md/.log    sampling chars/s: songgen (CUDA graph), songgen eager, bare step loop,
#                     window; the 2x512 lines carry the 20,000 / 200,000 chars/s targets
#   train.md/.log     training chars/s: songgen against a bare cuDNN nn.LSTM loop, same call
#   shakespeare.md    30-second runs on tinyshakespeare (target: validation <= 1.43 nats/char)
# songgen runs from this checkout. Missing click/tqdm/pytest are installed into a temporary
# folder if possible: from .wheels/ here or DATA/wheels (no network needed), else from the
# package index.
set -u
data=$(cd "${1:?give the data folder}" && pwd) || exit 2
out=$(mkdir -p "${2:?give the output folder}" && cd "$2" && pwd) || exit 2
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 SONGGEN_BENCH_DATA=$data
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
began=$(date +%s)
deadline=$((began + ${GPU_SESSION_SECONDS:-420}))
: > "$out/parts.txt"

# part NAME LIMIT COMMAND...: run COMMAND under `timeout` with at most LIMIT seconds (less if
# the session deadline is nearer), stdout+stderr to OUT/NAME.log; never fails the script.
part() {
    local name=$1 limit=$2 left t0 rc
    shift 2
    left=$((deadline - $(date +%s) - 5))
    if ((left < 20)); then
        echo "$name: skipped, the session deadline is near" | tee -a "$out/parts.txt" >&2
        return 0
    fi
    ((limit > left)) && limit=$left
    echo "== $name (up to ${limit}s)" >&2
    t0=$(date +%s)
    timeout -k 10 "$limit" "$@" > "$out/$name.log" 2>&1
    rc=$?
    echo "$name: exit $rc after $(($(date +%s) - t0))s$( ((rc == 124)) && echo ' (timed out)')" \
        | tee -a "$out/parts.txt" >&2
    return 0
}

# -- facts ---------------------------------------------------------------------------------
{
    echo "date: $(date -u +%FT%TZ)"
    timeout 60 "$PY" -c 'import sys, torch
print("python", sys.version.split()[0], "| torch", torch.__version__, "| CUDA", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("GPU:", torch.cuda.get_device_name(), "| memory %.0f GiB" % (p.total_memory / 2**30),
          "| bf16:", torch.cuda.is_bf16_supported(), "| GPUs:", torch.cuda.device_count())
else:
    print("GPU: none visible to torch (CUDA parts will fail or skip)")' 2>&1
    timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit \
        --format=csv,noheader 2>&1 | sed 's/^/nvidia-smi: /'
    model=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
    [ -n "$model" ] || model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)
    echo "host CPU: ${model:-unknown}; $(nproc) CPUs visible"
    for flag in avx512f avx512_bf16 amx_bf16 amx_tile; do
        if grep -qw "$flag" /proc/cpuinfo 2>/dev/null; then echo "  flag $flag: yes"
        else echo "  flag $flag: no"; fi
    done
} > "$out/facts.txt" 2>&1
cat "$out/facts.txt" >&2

# -- dependencies --------------------------------------------------------------------------
missing() {
    local m
    for m in click tqdm numpy pytest; do
        "$PY" -c "import $m" > /dev/null 2>&1 || printf '%s ' "$m"
    done
}
{
    need=$(missing)
    echo "missing at start: ${need:-nothing}"
    if [ -n "$need" ]; then
        deps=$(mktemp -d)
        export PYTHONPATH=$PYTHONPATH:$deps
        # pytest's own dependencies; exceptiongroup only matters before Python 3.11.
        wanted=${need/pytest/pytest pluggy iniconfig packaging exceptiongroup}
        for wheels in "$PWD/.wheels" "$data/wheels"; do
            [ -d "$wheels" ] || continue
            echo "installing $wanted from $wheels (one at a time: a missing one stops none)"
            for name in $wanted; do
                timeout 30 "$PY" -m pip install -q --no-deps --no-index --find-links "$wheels" \
                    --target "$deps" "$name" 2>&1 | tail -1
            done
            need=$(missing)
            [ -z "$need" ] && break
        done
        if [ -n "$need" ]; then
            echo "trying the package index for: $need"
            wanted=${need/pytest/pytest pluggy iniconfig packaging exceptiongroup}
            # shellcheck disable=SC2086
            timeout 90 "$PY" -m pip install -q --no-deps --retries 0 --timeout 5 \
                --target "$deps" $wanted 2>&1 | tail -3
        fi
        need=$(missing)
        echo "missing after installing: ${need:-nothing}"
        [ -n "$need" ] && echo "PYTHONPATH=$PYTHONPATH"
    fi
} > "$out/deps.txt" 2>&1
cat "$out/deps.txt" >&2
export PYTHONPATH  # with the temporary folder, if one was made (the group ran in this shell)
need=$(missing)

# -- CUDA tests ----------------------------------------------------------------------------
if [[ " $need " == *" pytest "* ]]; then
    echo "tests: skipped, pytest is missing and could not be installed" \
        | tee -a "$out/parts.txt" > "$out/tests.log"
else
    part tests 120 "$PY" -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py \
        tests/test_stepper_graph.py tests/test_sample.py
fi

# -- sampling ------------------------------------------------------------------------------
part sample 150 "$PY" -m benchmarks sample --device cuda --rounds 3 --only sampling
sed -n '/^|/p' "$out/sample.log" > "$out/sample.md"

# -- training throughput -------------------------------------------------------------------
part train 150 "$PY" -m benchmarks train --device cuda --rounds 3
sed -n '/^|/p' "$out/train.log" > "$out/train.md"

# -- tinyshakespeare, 30 s each ------------------------------------------------------------
# Candidate GPU settings (benchmarks/RESULTS.md records the best). The file has no song breaks, so it is
# one song and validation is its last 10%, cut at a line boundary. Most promising first.
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
    part "shakespeare-$i" 75 "$PY" -m songgen train "$data/tinyshakespeare.txt" ${configs[$i]} \
        --time-limit 30s --patience 0 --eval-every 50 --keep-last 0 --checkpoint-dir "$ck"
    timeout 60 "$PY" - "$ck" "${configs[$i]}" >> "$out/shakespeare.md" 2>&1 <<'EOF'
import json, sys
folder, settings = sys.argv[1], sys.argv[2]
try:
    rows = [json.loads(line) for line in open(f"{folder}/metrics.jsonl")]
    best = min(rows, key=lambda r: r["val_loss"])
    try:
        import torch
        saved = torch.load(f"{folder}/best.pt", map_location="cpu", weights_only=True)["step"]
    except Exception as exc:  # noqa: BLE001
        saved = f"? ({type(exc).__name__})"
    print(f"| `{settings}` | {rows[-1]['step']} | {best['val_loss']:.4f} | {best['step']} | "
          f"{best['elapsed']:.1f} | {saved} |")
except Exception as exc:  # noqa: BLE001
    print(f"| `{settings}` | no result ({type(exc).__name__}: {exc}); see its log | | | | |")
EOF
    rm -f "$ck"/*.pt  # large; the metrics stay
done

# -- summary -------------------------------------------------------------------------------
{
    echo "# songgen GPU session, $(($(date +%s) - began)) s"
    echo; echo '```'; cat "$out/facts.txt"; echo '```'
    echo; echo '```'; cat "$out/deps.txt"; echo; cat "$out/parts.txt"; echo '```'
    echo; echo "## CUDA tests"; echo; echo '```'; tail -15 "$out/tests.log" 2>/dev/null; echo '```'
    echo; echo "## Sampling (chars/s)"; echo; cat "$out/sample.md"
    echo; echo '```'; grep -E '^sample ' "$out/sample.log" 2>/dev/null; echo '```'
    echo; echo "## Training (chars/s)"; echo; cat "$out/train.md"
    echo; echo "## tinyshakespeare, 30 s"; echo; cat "$out/shakespeare.md"
} > "$out/summary.md"
cat "$out/summary.md"
