#!/usr/bin/env bash
# Distributed testing, one process per GPU (NCCL), or N processes on a
# machine without GPUs (gloo):
#   tools/dist_test.sh CONFIG CHECKPOINT N [test.py args]
# Several nodes: as tools/dist_train.sh (NNODES, NODE_RANK, MASTER_ADDR).
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
cd "$(dirname "$0")/.." || exit 1
"${PYTHON:-python}" -m torch.distributed.run --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" --master_port="$PORT" \
    tools/test.py "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
