"""Export the backbone or a task's model to ONNX and check it in
onnxruntime.

    python tools/export_onnx.py backbone --arch small \
        [--checkpoint RegionViT-S.pth] --out regionvit_s.onnx
    python tools/export_onnx.py model CONFIG [CHECKPOINT] --out model.onnx \
        [--shape H W] [--dynamic | --static]

The backbone file takes any batch size and image size. A model file is
fixed to one image at the size the config's test pipeline makes where that
pipeline makes one size (top-down pose crops, resizes without keeping the
aspect ratio), and takes any batch size and image size where its sizes
vary (keep-ratio or orientation-dependent resizes, images at their own
size); ``--dynamic`` and ``--static`` choose. Each export runs the file in
onnxruntime on random inputs (the backbone also at 333x517 with batch 3
and at 672x1120; a dynamic model also at about 3/4 of the size with batch
2), compares with PyTorch (detectors: with ``model.predict``), prints the
largest difference and fails when it exceeds the tolerance. See the
docs/deployment.md for what the outputs mean.
"""
import argparse
import importlib.util
import logging
import os.path as osp
import sys
import time
from contextlib import contextmanager

import torch
from mmengine.config import DictAction
from mmengine.logging import MMLogger

import mmregionvit  # noqa: F401
from mmregionvit.deploy import export as onnx_export
from mmregionvit.models import VARIANTS, RegionViT
from mmregionvit.utils.config import default_input_size, load_config
from mmregionvit.utils.quiet import quiet_upstream_noise

# input size of the backbone's traced example and first check (a model's:
# its task's default input size)
BACKBONE_SHAPE = (224, 224)
# largest difference accepted: of the output tensors, or in detection box
# pixels (scores: 1e-4; masks: 1e-4 of the pixels)
DEFAULT_ATOL = {'backbone': 1e-4, 'mmdet': 1e-2, 'mmseg': 1e-3, 'mmpose': 1e-4}


def parse_args(argv=None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--out', required=True, help='the .onnx file')
    common.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='size of the traced example and of the first check '
        '(default: the size the test pipeline makes, else 224 224 for '
        'the backbone, 672 1120 for detection, 512 512 for segmentation, '
        '256 192 for keypoints)')
    common.add_argument(
        '--atol',
        type=float,
        help='tolerance of the check (default 1e-4 for the backbone and '
        'keypoints, 1e-3 for segmentation logits, 1e-2 px for detection '
        'boxes)')
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    modes = parser.add_subparsers(dest='mode', required=True)
    backbone = modes.add_parser(
        'backbone', parents=[common], help='a RegionViT backbone')
    backbone.add_argument('--arch', choices=sorted(VARIANTS), default='small')
    backbone.add_argument(
        '--checkpoint',
        help='official release file or any checkpoint the backbone loads '
        '(default: random weights)')
    model = modes.add_parser(
        'model',
        parents=[common],
        help='a detection, segmentation or '
        'keypoint model from its config')
    model.add_argument('config')
    model.add_argument(
        'checkpoint', nargs='?', help='trained weights (default: random)')
    sizes = model.add_mutually_exclusive_group()
    sizes.add_argument(
        '--dynamic',
        action='store_true',
        help='free batch size and image size (default where the test '
        'pipeline makes images of varying size)')
    sizes.add_argument(
        '--static',
        action='store_true',
        help='one image of the traced size (default where the test '
        'pipeline makes one size)')
    model.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def build_backbone(args: argparse.Namespace) -> torch.nn.Module:
    init_cfg = None
    if args.checkpoint:
        init_cfg = dict(type='Pretrained', checkpoint=args.checkpoint)
    backbone = RegionViT(arch=args.arch, init_cfg=init_cfg)
    with quiet_init(not args.checkpoint):
        backbone.init_weights()
    return backbone


@contextmanager
def quiet_init(quiet: bool):
    """Without mmengine's report of every initialised parameter."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def build_model(cfg, checkpoint) -> torch.nn.Module:
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.init_cfg = None  # weights from CHECKPOINT, if any
    model = MODELS.build(cfg.model)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu')
    else:
        with quiet_init(True):
            model.init_weights()
    return model.eval()


def run_command(args: argparse.Namespace, task: str) -> str:
    """The command that runs the exported file."""
    if task == 'backbone':
        return (f"python -c \"import numpy as np, onnxruntime as ort; s = "
                f"ort.InferenceSession('{args.out}'); print([o.shape for o "
                "in s.run(None, {'input': np.random.randn(1, 3, 224, 224)"
                ".astype(np.float32)})])\"")
    return (f'python tools/infer.py {args.config} {args.out} IMAGE '
            '--backend onnxruntime --out-dir outputs')


def static_note(config: str, shape, made) -> str:
    """One line on what a static export fixes, next to what the config's
    test pipeline makes (``made``: its one size, ``None`` when it varies)."""
    fixed = f'fixed input: 1 image of {shape[0]}x{shape[1]}'
    if made == tuple(shape):
        where = f'the size the test pipeline of {config} makes'
    elif made is None:
        where = (f'the test pipeline of {config} makes images of other '
                 'sizes too, which the file refuses')
    else:
        where = (f'the test pipeline of {config} makes {made[0]}x{made[1]}, '
                 'which the file refuses')
    return f'{fixed} ({where}); export with --dynamic for any batch and size'


def check_deploy_packages() -> None:
    """ImportError naming what is missing and how to install it."""
    missing = [
        name for name in ('onnx', 'onnxruntime')
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise ImportError(f'{" and ".join(missing)} not installed: pip '
                          'install -r requirements/deploy.txt')


def main(argv=None) -> int:
    args = parse_args(argv)
    quiet_upstream_noise()
    try:
        check_deploy_packages()
        if args.mode == 'backbone':
            task, model = 'backbone', None
            if args.checkpoint and not osp.isfile(args.checkpoint):
                raise FileNotFoundError(
                    f'checkpoint not found: {args.checkpoint}')
            graph = onnx_export.backbone_graph(build_backbone(args))
            dynamic, made = True, None
        else:
            cfg = load_config(args.config, args.cfg_options)
            if args.checkpoint and not osp.isfile(args.checkpoint):
                raise FileNotFoundError(
                    f'checkpoint not found: {args.checkpoint}')
            task = cfg.default_scope
            made = onnx_export.pipeline_input_size(cfg)
            model = build_model(cfg, args.checkpoint)
            graph = onnx_export.model_graph(model, task)
            dynamic = args.dynamic or (made is None and not args.static)
    except (FileNotFoundError, ImportError, ValueError, KeyError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    shape = tuple(
        args.shape or made or
        (BACKBONE_SHAPE if task == 'backbone' else default_input_size(task)))
    atol = args.atol if args.atol is not None else DEFAULT_ATOL[task]
    checks = [(1, shape)]
    if task == 'backbone':
        checks += [(3, (333, 517)), (1, (672, 1120))]
    elif dynamic:
        checks.append((2, onnx_export.second_shape(shape)))

    images = onnx_export.random_images(1, shape)
    if task == 'mmdet':
        example = onnx_export.detector_batch(model, images)[1]
    elif task == 'backbone':
        example = torch.randn(1, 3, *shape)
    else:
        example = onnx_export.normalised(model, images)
    start = time.perf_counter()
    onnx_export.export(graph, example, args.out, dynamic)
    sizes = 'dynamic batch, height and width' if dynamic else 'fixed size'
    print(f'exported {args.out} ({sizes}, opset {onnx_export.OPSET}) in '
          f'{time.perf_counter() - start:.0f} s')
    if not dynamic:
        print(static_note(args.config, shape, made))
    print(f'outputs: {onnx_export.model_outputs_doc(graph)}')
    try:
        lines = onnx_export.check_model(args.out, graph, model, checks, atol)
    except onnx_export.CheckFailed as e:
        print(
            f'error: check failed, {e} The file is left for inspection; '
            'do not deploy it.',
            file=sys.stderr)
        return 1
    for line in lines:
        print(f'onnxruntime vs PyTorch, {line}')
    print(f'run it: {run_command(args, task)}')
    if task != 'backbone':
        print(f'evaluate it: python tools/test.py {args.config} {args.out} '
              '--backend onnxruntime')
    return 0


if __name__ == '__main__':
    sys.exit(main())
