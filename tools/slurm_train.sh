#!/usr/bin/env bash
# Training under Slurm, one process per GPU:
#   GPUS=16 GPUS_PER_NODE=8 tools/slurm_train.sh PARTITION JOB_NAME CONFIG \
#       WORK_DIR [train.py args]
# On nodes without GPUs set GRES=none (then GPUS and GPUS_PER_NODE count
# processes; they use gloo).
set -x
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
GRES=${GRES:-gpu:$GPUS_PER_NODE}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
cd "$(dirname "$0")/.." || exit 1
# shellcheck disable=SC2086  # SRUN_ARGS holds several arguments
srun -p "$PARTITION" --job-name="$JOB_NAME" --gres="$GRES" \
    --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 $SRUN_ARGS \
    "${PYTHON:-python}" -u tools/train.py "$CONFIG" --work-dir="$WORK_DIR" \
    --launcher slurm "${@:5}"
