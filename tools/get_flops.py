"""Parameters and FLOPs of any config's model at a given input size.

    python tools/get_flops.py configs/detection/maskrcnn_regionvit_s_coco.py \
        --shape 800 1280

FLOPs follow the OpenMMLab/fvcore convention (one multiply-add = 1 FLOP),
counted in the model's ``tensor`` mode on one image (for two-stage
detectors: backbone, neck, RPN and the RoI heads on the proposals), with
attention (``scaled_dot_product_attention``) included.
"""
import argparse
import sys

import torch
from mmengine.config import DictAction
from mmengine.registry import MODELS, init_default_scope

import mmregionvit  # noqa: F401
from mmregionvit.utils.complexity import TensorMode, count_macs
from mmregionvit.utils.config import default_input_size, load_config
from mmregionvit.utils.preflight import PreflightError, check_channels
from mmregionvit.utils.quiet import quiet_upstream_noise

SAMPLES = {
    'mmdet': ('mmdet.structures', 'DetDataSample'),
    'mmseg': ('mmseg.structures', 'SegDataSample'),
    'mmpose': ('mmpose.structures', 'PoseDataSample')
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Count params and FLOPs')
    parser.add_argument('config')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=None,
        metavar=('H', 'W'),
        help='input size (default 672 1120 for detection, '
        '512 512 for segmentation, 256 192 for keypoints)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def complexity(cfg, shape) -> dict:
    """Params and GFLOPs of ``cfg``'s model (and its backbone) at ``shape``."""
    import importlib
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model).eval()
    h, w = shape
    module, name = SAMPLES[cfg.default_scope]
    sample = getattr(importlib.import_module(module), name)(
        metainfo=dict(
            img_shape=(h, w),
            ori_shape=(h, w),
            pad_shape=(h, w),
            batch_input_shape=(h, w),
            scale_factor=(1.0, 1.0),
            input_size=(w, h)))
    x = torch.randn(1, 3, h, w)
    total, uncounted = count_macs(TensorMode(model, [sample]), (x, ))
    backbone, _ = count_macs(model.backbone, (x, ))
    return dict(
        params=sum(p.numel() for p in model.parameters()),
        backbone_params=sum(p.numel() for p in model.backbone.parameters()),
        gflops=total / 1e9,
        backbone_gflops=backbone / 1e9,
        uncounted=uncounted)


def main(argv=None) -> int:
    args = parse_args(argv)
    quiet_upstream_noise()
    try:
        cfg = load_config(args.config, args.cfg_options)
        check_channels(cfg.model)
    except (FileNotFoundError, ImportError, ValueError, PreflightError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    shape = args.shape or default_input_size(cfg.default_scope)
    r = complexity(cfg, shape)
    print(f'{args.config} at {shape[0]}x{shape[1]}:')
    print(f'  params: {r["params"] / 1e6:.2f} M '
          f'(backbone {r["backbone_params"] / 1e6:.2f} M)')
    print(f'  FLOPs:  {r["gflops"]:.1f} G (backbone {r["backbone_gflops"]:.1f}'
          ' G; one multiply-add = 1 FLOP)')
    if r['uncounted']:
        print('  not counted: ' + ', '.join(sorted(r['uncounted'])))
    return 0


if __name__ == '__main__':
    sys.exit(main())
