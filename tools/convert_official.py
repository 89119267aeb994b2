"""Convert official RegionViT checkpoints for use with mmregionvit.

    # ImageNet (classification) or detectron2-backbone weights -> backbone
    python tools/convert_official.py RegionViT-S.pth regionvit-s.pth
    # ... converted to 14x14 windows (for the w14 variants)
    python tools/convert_official.py RegionViT-S.pth regionvit-s-w14.pth \
        --window-size 14
    # a whole detectron2 Mask R-CNN / RetinaNet -> mmdet detector
    python tools/convert_official.py MaskRCNN_1x_RegionViT-S.pth \
        maskrcnn_regionvit_s_coco.pth \
        --config configs/detection/maskrcnn_regionvit_s_coco.py

The output is an mmengine checkpoint: use a backbone file as the
backbone's ``init_cfg`` checkpoint, a detector file with ``tools/test.py``
or to start training from (``tools/train.py CONFIG --cfg-options
load_from=FILE``).
"""
import argparse
import os
import os.path as osp
import shlex
import sys
import tempfile
from typing import List, Optional

import torch

from mmregionvit.models.checkpoint import checkpoint_filter_fn, read_state_dict
from mmregionvit.models.detectron2_checkpoint import (check_against_model,
                                                      convert_detectron2)
from mmregionvit.utils.checkpoint_safety import CheckpointFileError
from mmregionvit.utils.quiet import quiet_upstream_noise


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official checkpoint file')
    parser.add_argument('dst', help='output file')
    parser.add_argument(
        '--window-size',
        type=int,
        nargs='+',
        help='convert the backbone to these window sizes '
        '(one, or one per stage)')
    parser.add_argument(
        '--config',
        help='detector config whose model the '
        'converted detector must fit exactly')
    return parser.parse_args(argv)


def is_detector(state_dict: dict) -> bool:
    return any(
        k.startswith(('proposal_generator.', 'head.cls_subnet.'))
        for k in state_dict)


def convert(src: str, window_size=None, config=None) -> dict:
    """The converted mmengine checkpoint of an official file."""
    state_dict = read_state_dict(src)
    if is_detector(state_dict):
        if window_size:
            raise ValueError('--window-size applies to backbone weights only;'
                             ' a detector was trained with its windows.')
        state_dict = convert_detectron2(state_dict)
        if config:
            from mmdet.registry import MODELS
            from mmengine.config import Config
            from mmengine.registry import init_default_scope
            cfg = Config.fromfile(config)
            cfg.model.backbone.init_cfg = None
            init_default_scope(cfg.get('default_scope', 'mmdet'))
            check_against_model(state_dict, MODELS.build(cfg.model))
        kind = 'detectron2 detector'
    else:
        if config:
            raise ValueError('--config checks detectors; this is a backbone '
                             'checkpoint.')
        windows = None
        if window_size:
            windows = window_size * 4 if len(window_size) == 1 \
                else window_size
        state_dict = checkpoint_filter_fn(state_dict, windows)
        kind = 'backbone'
    return dict(
        state_dict=state_dict,
        meta=dict(
            converted_from=osp.basename(src),
            kind=kind,
            window_size=window_size))


def next_steps(kind: str, dst: str, config: Optional[str]) -> List[str]:
    """Command lines that use the converted file."""
    dst, config = shlex.quote(dst), shlex.quote(config or 'CONFIG')
    if kind == 'backbone':
        return [
            f'python tools/train.py {config} --cfg-options '
            f'model.backbone.init_cfg.checkpoint={dst}'
        ]
    return [
        f'python tools/test.py {config} {dst}',
        f'python tools/train.py {config} --cfg-options load_from={dst}'
    ]


def main(argv=None) -> int:
    args = parse_args(argv)
    quiet_upstream_noise()
    if not osp.isfile(args.src):
        print(f'error: {args.src} does not exist', file=sys.stderr)
        return 2
    try:
        checkpoint = convert(args.src, args.window_size, args.config)
    except CheckpointFileError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    except (KeyError, ValueError) as e:
        print(f'error: cannot convert {args.src}: {e}', file=sys.stderr)
        return 2
    out_dir = osp.dirname(osp.abspath(args.dst))
    os.makedirs(out_dir, exist_ok=True)
    # write next to the target and rename: no half-written file on failure
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix='.part')
    os.close(fd)
    try:
        torch.save(checkpoint, tmp)
        os.replace(tmp, args.dst)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    kind = checkpoint['meta']['kind']
    print(f'{kind}: {len(checkpoint["state_dict"])} tensors written to '
          f'{args.dst}\nuse it with:')
    for command in next_steps(kind, args.dst, args.config):
        print(f'  {command}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
