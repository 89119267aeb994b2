#!/usr/bin/env python
"""Latency, throughput, memory and FLOP efficiency of backbones and models.

Examples::

    python tools/benchmark.py backbone --arch small
    python tools/benchmark.py backbone --arch small --task train --batch 2 \
        --with-cp
    python tools/benchmark.py backbone --arch small --compare-compile
    python tools/benchmark.py backbone --arch small --compare-fused
    python tools/benchmark.py backbone --arch small --compare-onnx
    python tools/benchmark.py model --compare-onnx \
        configs/detection/retinanet_regionvit_s_coco.py
    python tools/benchmark.py backbone --arch small --compare-openvino \
        --dtype bf16
    python tools/benchmark.py backbone --arch small --baseline HEAD~1
    python tools/benchmark.py backbone --arch small --dtype bf16 \
        --gemm-size 4096 --compare-official ../RegionViT
    python tools/benchmark.py backbone --arch small --device cuda \
        --dtype bf16 --batch 8 --compare-timm swin_tiny_patch4_window7_224
    python tools/benchmark.py model \
        configs/detection/maskrcnn_regionvit_s_coco.py --task train
    python tools/benchmark.py model --compare \
        configs/detection/maskrcnn_regionvit_s_coco.py \
        mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py
    python tools/benchmark.py model \
        configs/segmentation/upernet_regionvit_s_ade20k.py --input-size 512 512
    python tools/benchmark.py model \
        configs/keypoint/td-hm_regionvit_s_coco-256x192.py --input-size 256 192

Units: a MAC is one multiply-add, which OpenMMLab and fvcore tables call one
"FLOP". Rates (the model's achieved rate and the GEMM rate) count 2 FLOPs per
MAC, so the fraction of the GEMM rate compares like with like.
"""
import argparse
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from mmengine.config import DictAction

from mmregionvit.benchmark import UsageError
from mmregionvit.benchmark.gemm import DTYPES
from mmregionvit.benchmark.runner import BACKBONE_INPUT_SIZE, run
from mmregionvit.models import VARIANTS
from mmregionvit.utils.config import INPUT_SIZES


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        '--input-size',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='default: %d %d for a backbone; for a model its task\'s, as '
        'tools/get_flops.py and tools/export_onnx.py take it (%s)' %
        (*BACKBONE_INPUT_SIZE, ', '.join(
            f'{scope} {h} {w}' for scope, (h, w) in INPUT_SIZES.items())))
    common.add_argument('--batch', type=int, default=1)
    common.add_argument(
        '--task', choices=['inference', 'train'], default='inference')
    common.add_argument(
        '--dtype',
        choices=sorted(DTYPES),
        default='fp32',
        help='bf16, fp16: torch.autocast to that dtype (fp16 training '
        'without loss scaling)')
    common.add_argument(
        '--compile', action='store_true', help='torch.compile the backbone')
    common.add_argument(
        '--compare-compile',
        action='store_true',
        help='time eager (A) against torch.compile (B), '
        'alternating in one process')
    common.add_argument(
        '--compare-fused',
        action='store_true',
        help='time the reference path (A, fused=False) against the fused '
        'fast paths (B), alternating in one process')
    common.add_argument(
        '--compare-onnx',
        action='store_true',
        help='time PyTorch eager (A) against onnxruntime running the '
        'exported file (B), alternating in one process (CPU, fp32 '
        'inference)')
    common.add_argument(
        '--compare-openvino',
        action='store_true',
        help='time PyTorch eager (A) against OpenVINO running the exported '
        'file (B), alternating in one process (CPU inference; OpenVINO at '
        'the --dtype, fp32 or bf16, PyTorch eager then under autocast)')
    common.add_argument(
        '--freezing',
        action='store_true',
        help="inference with --compile or --compare-compile:"
        " Inductor's freezing (weights become constants)")
    common.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    common.add_argument(
        '--threads',
        type=int,
        help="torch intra-op threads (default: torch's, "
        f'{torch.get_num_threads()} here)')
    common.add_argument(
        '--warmup',
        type=int,
        default=2,
        help='untimed steps first (>= 1; the first one pays '
        'allocation and compilation)')
    common.add_argument('--repeat', type=int, default=10)
    common.add_argument(
        '--attention',
        choices=['fused', 'materialised'],
        default='fused',
        help='materialised: SDPA math kernel, which stores '
        'attention matrices (a memory reference)')
    common.add_argument(
        '--with-cp',
        action='store_true',
        help='gradient checkpointing in the backbone')
    common.add_argument(
        '--gemm-size',
        type=int,
        help='square matmul size for the reference rate '
        '(default 2048 on CPU, 8192 on CUDA)')
    common.add_argument(
        '--live-memory',
        action='store_true',
        help='CPU: one more, untimed step that records the '
        "peak of glibc malloc's in-use bytes after every op "
        '(what RSS shows minus memory malloc keeps after '
        'frees)')
    common.add_argument('--json', type=Path, metavar='PATH')

    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    modes = parser.add_subparsers(dest='mode', required=True)
    backbone = modes.add_parser(
        'backbone', parents=[common], help='a RegionViT backbone by arch name')
    backbone.add_argument('--arch', choices=sorted(VARIANTS), default='small')
    backbone.add_argument(
        '--baseline',
        metavar='REV',
        help='time the backbone of git revision REV of this checkout (A) '
        'against the working tree\'s (B), alternating in one process')
    backbone.add_argument(
        '--compare-timm',
        metavar='MODEL',
        help="time the RegionViT backbone (A) against timm model MODEL's "
        'feature maps (B: features_only, built for --input-size, random '
        'weights), alternating in one process, e.g. '
        'swin_tiny_patch4_window7_224')
    backbone.add_argument(
        '--compare-official',
        type=Path,
        metavar='DIR',
        help='time the official backbone (A: the code of DIR, a clone of '
        'https://github.com/IBM/RegionViT) against ours with the same '
        'weights (B), alternating in one process')
    backbone.add_argument(
        '--official',
        type=Path,
        metavar='DIR',
        help='time the official backbone of DIR (a clone of '
        'https://github.com/IBM/RegionViT) alone, e.g. for the memory of '
        'a fresh process')
    model = modes.add_parser(
        'model',
        parents=[common],
        help='an mmdet, mmseg or mmpose model from a '
        'config')
    model.add_argument(
        'config',
        nargs='?',
        help='config path or package::path, e.g. '
        'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py')
    model.add_argument(
        '--compare',
        nargs=2,
        metavar=('CONFIG_A', 'CONFIG_B'),
        help='time two configs alternating A, B per repeat')
    model.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, key=value (both '
        'configs with --compare)')
    return parser


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UsageError as e:
        parser.error(str(e))


if __name__ == '__main__':
    main()
