#!/usr/bin/env bash
# Pseudo masks with torchrun, each process writing the masks of its share of the images:
#   tools/dist_make_pseudo_masks.sh CONFIG CHECKPOINT NPROC --out-dir DIR [make_pseudo_masks.py args...]
# CHECKPOINT `none` (or "") for a training-free config (configs/clip_es/*, configs/dense_clip/*).
# NNODES, NODE_RANK, MASTER_ADDR, PORT as in tools/dist_train.sh.
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}
if [ "$CHECKPOINT" = "none" ] || [ -z "$CHECKPOINT" ]; then
    CHECKPOINT_ARG=()
else
    CHECKPOINT_ARG=("$CHECKPOINT")
fi

PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$(dirname "$0")/make_pseudo_masks.py" \
    "$CONFIG" "${CHECKPOINT_ARG[@]}" \
    --launcher pytorch "${@:4}"
