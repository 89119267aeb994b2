"""Evaluate a checkpoint on a config's test set, or write a results file
for a benchmark server.

    python tools/test.py CONFIG CHECKPOINT
    # COCO test-dev (detection, keypoints) or ADE20K (segmentation) server:
    python tools/test.py CONFIG CHECKPOINT --format-only work_dirs/results
    # a file exported from CONFIG by tools/export_onnx.py, the same way:
    python tools/test.py CONFIG MODEL.onnx --backend onnxruntime
    python tools/test.py CONFIG MODEL.onnx --backend openvino --precision fp32
    # under autocast (bfloat16 on a CPU, float16 on a GPU):
    python tools/test.py CONFIG CHECKPOINT --amp
"""
import argparse
import os
import os.path as osp
import sys
from typing import Optional

from mmengine.config import DictAction
from mmengine.device import get_device
from mmengine.runner import Runner

import mmregionvit  # noqa: F401  (registers the scope, safe checkpoint load)
from mmregionvit.datasets.bad_samples import EVAL_FLAG, BadSampleError
from mmregionvit.deploy.runtime import (ExportedShapeError,
                                        add_backend_arguments, check_backend,
                                        check_backend_file,
                                        check_pipeline_size, use_backend)
from mmregionvit.engine.autocast import (add_amp_argument, autocast_inference,
                                         inference_dtype)
from mmregionvit.models.checkpoint import read_state_dict
from mmregionvit.utils.config import load_config
from mmregionvit.utils.data_checks import guard_datasets, leave_out_bad_images
from mmregionvit.utils.dist import setup_distributed
from mmregionvit.utils.preflight import PreflightError, check_config
from mmregionvit.utils.quiet import quiet_upstream_noise


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a checkpoint')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint',
        help='checkpoint file, or an exported file with --backend')
    add_backend_arguments(parser, 'evaluate')
    add_amp_argument(parser)
    parser.add_argument(
        '--out', help='also save the raw predictions in this .pkl file')
    parser.add_argument('--work-dir', help='where logs and metrics go')
    parser.add_argument(
        '--format-only',
        metavar='PREFIX',
        help='write server results instead of evaluating: '
        'COCO JSON files PREFIX.bbox.json / PREFIX.segm.json '
        '/ PREFIX.keypoints.json, or segmentation PNGs in '
        'the folder PREFIX')
    parser.add_argument(
        '--show-dir',
        help='save visualisations here '
        '(relative to the work dir)')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation (tta_model and '
        'tta_pipeline of the config)')
    parser.add_argument(
        EVAL_FLAG,
        action='store_true',
        help='leave test images that cannot be decoded out of the metric, '
        'and say so, instead of stopping')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys')
    parser.add_argument(
        '--launcher',
        default='none',
        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def format_only(cfg, prefix: str) -> None:
    """Switch the test evaluator to writing server files under ``prefix``."""
    evaluator = cfg.test_evaluator
    if isinstance(evaluator, (list, tuple)):
        if len(evaluator) != 1:
            raise ValueError('--format-only needs a single test evaluator.')
        evaluator = evaluator[0]
    prefix = osp.abspath(prefix)
    os.makedirs(osp.dirname(prefix), exist_ok=True)
    evaluator.format_only = True
    if cfg.default_scope == 'mmseg':
        evaluator.output_dir = prefix
    else:
        evaluator.outfile_prefix = prefix
    cfg.test_evaluator = evaluator


def dump_results(runner: Runner, scope: str, path: str) -> None:
    """Make the test evaluator also save the raw predictions in ``path``
    (mmdet's dump encodes masks as RLE)."""
    if scope == 'mmdet':
        from mmdet.evaluation import DumpDetResults as Dump
    else:
        from mmengine.evaluator import DumpResults as Dump
    runner.test_evaluator.metrics.append(Dump(out_file_path=path))


def run_exported(runner: Runner,
                 cfg,
                 path: str,
                 backend: str,
                 precision: Optional[str] = None) -> None:
    """Let the runner's model run its network from the exported ``path``;
    ``ValueError`` for a file of another task, or of a fixed size the test
    pipeline does not make."""
    model = getattr(runner.model, 'module', runner.model)  # TTA, DDP
    check_pipeline_size(
        use_backend(model, path, cfg.default_scope, backend, precision), cfg)


def enable_show(cfg, show_dir: str) -> None:
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ValueError('--show-dir needs a visualization hook in '
                         'default_hooks.')
    hook.draw = True
    if cfg.default_scope == 'mmpose':
        hook.enable = True
        hook.out_dir = show_dir
    else:
        hook.test_out_dir = show_dir


def main(argv=None) -> int:
    args = parse_args(argv)
    quiet_upstream_noise()
    try:
        cfg = load_config(args.config, args.cfg_options, args.work_dir,
                          args.launcher)
        if not osp.isfile(args.checkpoint):
            raise FileNotFoundError(f'checkpoint {args.checkpoint} does not '
                                    'exist.')
        check_backend_file(args.checkpoint, args.backend)
        check_backend(args.backend, args.precision)
        amp = inference_dtype(args.amp, args.backend, get_device())
        if args.backend == 'pytorch':  # the file holds weights at all
            read_state_dict(args.checkpoint, mmap=True)
        if args.out and not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out {args.out}: give a .pkl file.')
        check_config(
            cfg, phases=['test'], skip_bad_eval=args.skip_bad_eval_images)
        if args.format_only:
            format_only(cfg, args.format_only)
        if args.show_dir:
            enable_show(cfg, args.show_dir)
        if args.tta:
            if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
                raise ValueError(f'{args.config} defines no tta_model and '
                                 'tta_pipeline.')
            cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
            cfg.tta_model.module = cfg.model
            cfg.model = cfg.tta_model
        setup_distributed(cfg)
        left_out = args.skip_bad_eval_images and leave_out_bad_images(
            cfg, 'test')
        guard_datasets(cfg, False, left_out and {'test': left_out})
    except (FileNotFoundError, ImportError, ValueError, PreflightError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    # an exported file holds its weights (Runner.test initialises none)
    cfg.load_from = args.checkpoint if args.backend == 'pytorch' else None
    runner = Runner.from_cfg(cfg)
    if amp:
        autocast_inference(
            getattr(runner.model, 'module', runner.model), get_device(), amp)
    if args.out:
        dump_results(runner, cfg.default_scope, args.out)
    try:
        if args.backend != 'pytorch':
            run_exported(runner, cfg, args.checkpoint, args.backend,
                         args.precision)
    except ValueError as e:  # another task's file, another fixed size
        print(f'error: {e}', file=sys.stderr)
        return 2
    try:
        metrics = runner.test()
    except ExportedShapeError as e:  # an image of another size
        print(f'error: {e}', file=sys.stderr)
        return 2
    except BadSampleError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    if args.format_only:
        print(f'results written with prefix {osp.abspath(args.format_only)}')
    return 0 if metrics is not None else 1


if __name__ == '__main__':
    sys.exit(main())
