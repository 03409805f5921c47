#!/usr/bin/env bash
# The prepared GPU check (issue 20, point 4): on a machine with NVIDIA GPUs and the project installed with a CUDA
# torch (the image of Dockerfile.cuda, or `make install` after `pip install torch==2.13.0` from the CUDA index),
#
#     bash bench/gpu_check.sh            # OUT=runs/gpu_check by default; DEVICE=cpu checks the script itself
#
# runs, and prints as it goes: the GPU and torch's view of it; bench/speed.py on the GPU (two_stage against em3,
# bf16 autocast); a short bf16 em3 training run on the synthetic log; DDP over NCCL with torchrun, one process per
# GPU (NCCL gives each rank its own GPU, so one GPU runs a world of 1 and says so); and the feature stage (the
# frozen encoders) on the GPU over a small raw synthetic catalogue. Every result lands under $OUT; a step that fails
# stops the script with its log's tail. About 5-10 minutes on one H100.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/gpu_check}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
say() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }
run() {  # run "$@" with its output in $OUT/$name.log; on failure print the log's tail and stop
    local name=$1; shift
    if ! "$@" >"$OUT/$name.log" 2>&1; then tail -40 "$OUT/$name.log"; echo "FAILED: $name" >&2; exit 1; fi
}

say "devices"
if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    GPUS=$(nvidia-smi -L | wc -l)
else
    GPUS=1
fi
$PY - "$DEVICE" <<'EOF'
import sys, torch
device = sys.argv[1]
if device == "cuda":
    assert torch.cuda.is_available(), "torch sees no CUDA device: install the CUDA build of torch 2.13.0"
    print("torch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name(0),
          "bf16:", torch.cuda.is_bf16_supported(), "NCCL:", torch.distributed.is_nccl_available())
else:
    print("torch", torch.__version__, "on CPU (a check of this script, not of a GPU)")
EOF

say "speed: two_stage against em3 (bench/speed.py)"
QUICK=$([ "$DEVICE" = cpu ] && echo --quick || true)
run speed $PY bench/speed.py --device "$DEVICE" $QUICK --out "$OUT/speed.json"
$PY -c "import json, sys; r = json.load(open(sys.argv[1])); print(json.dumps(r['targets'], indent=1))" "$OUT/speed.json"

TRAIN=(--config configs/em3_din.yaml --set train.device="$DEVICE" --set train.bf16=true --set train.epochs=1
       --set train.progress=false)
say "a short bf16 em3 training run"
run train_bf16 $PY -m em3 train "${TRAIN[@]}" --set output_dir="$OUT/train_bf16"
$PY -c "import json, sys; m = json.load(open(sys.argv[1])); print('valid AUC', m['valid']['auc'], 'steps', m['steps'])" \
    "$OUT/train_bf16/metrics/train.json"

say "DDP with torchrun: $GPUS process(es), one per GPU"
BACKEND=$([ "$DEVICE" = cuda ] && echo nccl || echo gloo)
run train_ddp "$(dirname "$PY")/torchrun" --standalone --nproc_per_node "$GPUS" -m em3 train "${TRAIN[@]}" \
    --set output_dir="$OUT/train_ddp"
$PY -c "import json, sys, torch; m = json.load(open(sys.argv[1])); loop = torch.load(sys.argv[2], weights_only=True)['loop']
print('backend $BACKEND, world size', loop.get('world_size'), ', valid AUC', m['valid']['auc'])" \
    "$OUT/train_ddp/metrics/train.json" "$OUT/train_ddp/checkpoints/last.pt"

say "the feature stage on the $DEVICE"
DATA=(--set data.raw_dir="$OUT/raw" --set raw_synthetic.n_items=200 --set raw_synthetic.n_users=100
      --set ingest.source="$OUT/raw" --set data.tables_dir="$OUT/tables" --set data.validation_dir="$OUT/validation"
      --set data.store_dir="$OUT/store" --set features.device="$DEVICE" --set features.progress=false)
run generate $PY -m em3 generate "${DATA[@]}"
run ingest $PY -m em3 ingest "${DATA[@]}"
run validate $PY -m em3 validate "${DATA[@]}"
start=$SECONDS
run features $PY -m em3 features "${DATA[@]}"
echo "features: $((SECONDS - start)) s for 200 items, encoders' loading included"
echo; echo "GPU check passed; results and logs in $OUT"
