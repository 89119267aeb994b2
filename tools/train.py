"""Train a model from an mmdet, mmseg or mmpose config.

    python tools/train.py configs/detection/maskrcnn_regionvit_s_coco.py
    python tools/train.py CONFIG --resume            # latest in the work dir
    python tools/train.py CONFIG --amp \
        --cfg-options train_dataloader.batch_size=4
"""
import argparse
import os
import sys

from mmengine.config import DictAction
from mmengine.runner import Runner

import mmregionvit  # noqa: F401  (registers the scope, safe checkpoint load)
from mmregionvit.datasets.bad_samples import EVAL_FLAG, BadSampleError
from mmregionvit.utils.config import load_config
from mmregionvit.utils.data_checks import guard_datasets, leave_out_bad_images
from mmregionvit.utils.dist import setup_distributed
from mmregionvit.utils.preflight import PreflightError, check_config
from mmregionvit.utils.quiet import quiet_upstream_noise


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision (float16 on GPUs, bfloat16 on a CPU)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the LR by the real batch size')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        help='resume from this checkpoint, or (no value) '
        'from the latest one in the work dir')
    parser.add_argument(
        '--max-bad-share',
        type=float,
        metavar='SHARE',
        help='stop when more than this share of the training samples '
        'cannot be used (default 0.01; config key bad_samples.max_share)')
    parser.add_argument(
        EVAL_FLAG,
        action='store_true',
        help='leave validation images that cannot be decoded out of the '
        'metric, and say so, instead of stopping')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. '
        'train_cfg.max_epochs=1')
    parser.add_argument(
        '--launcher',
        default='none',
        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    quiet_upstream_noise()
    try:
        cfg = load_config(args.config, args.cfg_options, args.work_dir,
                          args.launcher)
        check_config(cfg, skip_bad_eval=args.skip_bad_eval_images)
        setup_distributed(cfg)
    except (FileNotFoundError, ImportError, ValueError, PreflightError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if args.amp:
        # mmengine's wrapper, extended to train on a CPU (bfloat16)
        cfg.optim_wrapper.type = 'mmregionvit.AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            print(
                'error: --auto-scale-lr needs auto_scale_lr.base_batch_size'
                ' in the config',
                file=sys.stderr)
            return 2
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.max_bad_share is not None:
        cfg.bad_samples = dict(
            cfg.get('bad_samples') or {}, max_share=args.max_bad_share)
    try:
        left_out = args.skip_bad_eval_images and cfg.get('val_cfg') and \
            leave_out_bad_images(cfg, 'val')
        guard_datasets(cfg, True, left_out and {'val': left_out})
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    try:
        Runner.from_cfg(cfg).train()
    except BadSampleError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
