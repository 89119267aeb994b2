#!/usr/bin/env bash
# Distributed training, one process per GPU (NCCL), or N processes on a
# machine without GPUs (gloo):
#   tools/dist_train.sh CONFIG N [train.py args]
# Several nodes: run it on each with NNODES, NODE_RANK (0 .. NNODES-1) and
# MASTER_ADDR (node 0's address) set; PORT is the rendezvous port.
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
cd "$(dirname "$0")/.." || exit 1
"${PYTHON:-python}" -m torch.distributed.run --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" --master_port="$PORT" \
    tools/train.py "$CONFIG" --launcher pytorch "${@:3}"
