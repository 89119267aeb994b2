"""A benchmark run from parsed arguments (tools/benchmark.py): the checks
of its arguments, the GEMM reference before and after, the workloads timed
alternating, the report."""
import argparse
import importlib.util
import json
import os
import statistics
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Dict, List, Tuple

import timm
import torch

from mmregionvit.utils.config import default_input_size
from mmregionvit.utils.preflight import PreflightError, check_channels
from mmregionvit.utils.quiet import quiet_upstream_noise
from . import UsageError
from .gemm import gemm_references, measure_gemm
from .memory import glibc_in_use
from .report import print_report, summarize
from .timing import time_workloads
from .workloads import (backbone_workload, compared_variants,
                        load_model_config, model_workload, onnx_workloads,
                        resolve_config)

# backbone mode's input size (H, W) unless --input-size; model mode takes
# its config's task's (mmregionvit.utils.config.default_input_size)
BACKBONE_INPUT_SIZE = (672, 1120)


def check_args(args: argparse.Namespace) -> Tuple[torch.device, List[Path]]:
    """Check the arguments, raising :class:`UsageError`; return the device
    and the config paths."""
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise UsageError(
            f'--device cuda: CUDA is not available (torch '
            f'{torch.__version__}, CUDA build {torch.version.cuda}, '
            f'{torch.cuda.device_count()} devices visible)')
    if args.device == 'cpu' and not Path('/proc/self/statm').exists():
        raise UsageError('CPU memory sampling needs Linux /proc/self/statm')
    counts = dict(
        batch=args.batch,
        warmup=args.warmup,
        repeat=args.repeat,
        threads=args.threads,
        gemm_size=args.gemm_size,
        input_size=min(args.input_size or BACKBONE_INPUT_SIZE))
    bad = [k for k, v in counts.items() if v is not None and v < 1]
    if bad:
        raise UsageError(f'must be >= 1: {", ".join(bad)}')
    comparisons = [
        f'--{k.replace("_", "-")}'
        for k in ('compare', 'compare_compile', 'compare_fused', 'baseline',
                  'compare_timm', 'compare_onnx', 'compare_openvino',
                  'compare_official') if getattr(args, k, None)
    ]
    if getattr(args, 'official', None) and comparisons:
        raise UsageError('--official times the official backbone alone: '
                         f'drop {" and ".join(comparisons)}')
    if len(comparisons) > 1:
        raise UsageError(
            f'{" and ".join(comparisons)} each time two workloads; '
            'use one of them')
    compiling = args.compile or args.compare_compile
    if args.compile and args.compare_compile:
        raise UsageError('--compare-compile times eager and compiled; drop '
                         '--compile')
    if args.freezing and (not compiling or args.task != 'inference'):
        raise UsageError(
            '--freezing applies to compiled inference: add '
            '--compile or --compare-compile, and --task inference')
    if args.live_memory and (args.device != 'cpu' or compiling):
        raise UsageError('--live-memory measures eager CPU steps (on CUDA the '
                         'peak is already allocated memory); drop --compile / '
                         '--compare-compile or --device cuda')
    if args.live_memory and glibc_in_use() is None:
        raise UsageError('--live-memory needs glibc >= 2.33 (mallinfo2)')
    if args.compare_onnx and (args.device != 'cpu' or compiling
                              or args.task != 'inference'
                              or args.dtype != 'fp32' or args.with_cp):
        raise UsageError(
            '--compare-onnx times fp32 inference on the CPU: drop '
            '--device cuda, --compile, --task train, --dtype '
            'and --with-cp')
    official = getattr(args, 'compare_official', None) or getattr(
        args, 'official', None)
    if official and (args.with_cp or args.attention != 'fused'):
        raise UsageError('--official, --compare-official: the official '
                         'backbone has no gradient checkpointing and always '
                         'materialises attention; drop --with-cp and '
                         '--attention')
    if args.compare_openvino:
        check_openvino_comparison(args, compiling)
    if args.mode == 'backbone':
        if args.compare_timm and not timm.is_model(args.compare_timm):
            raise UsageError(
                f'--compare-timm {args.compare_timm}: no such timm '
                f'model (timm {timm.__version__}; timm.list_models()'
                ' lists them)')
        args.input_size = args.input_size or list(BACKBONE_INPUT_SIZE)
        return torch.device(args.device), []
    if bool(args.config) == bool(args.compare):
        raise UsageError('model mode takes one CONFIG or --compare CONFIG_A '
                         'CONFIG_B')
    try:
        paths = [resolve_config(c) for c in args.compare or [args.config]]
        cfgs = [load_model_config(p, args.cfg_options) for p in paths]
        for cfg in cfgs:  # the model checks train.py and test.py run
            check_channels(cfg.model)
        sizes = {
            default_input_size(cfg.get('default_scope', 'mmdet'))
            for cfg in cfgs
        }
    except (FileNotFoundError, PreflightError, ValueError) as e:
        raise UsageError(str(e)) from e
    if args.input_size is None:
        if len(sizes) > 1:
            raise UsageError('--compare: the configs are of different tasks; '
                             'give the --input-size H W to measure both at')
        args.input_size = list(sizes.pop())
    return torch.device(args.device), paths


def check_openvino_comparison(args: argparse.Namespace,
                              compiling: bool) -> None:
    """:class:`UsageError` unless ``--compare-openvino`` can run as asked:
    CPU inference at fp32 or bf16, OpenVINO installed."""
    if (args.device != 'cpu' or compiling or args.task != 'inference'
            or args.dtype == 'fp16' or args.with_cp):
        raise UsageError(
            '--compare-openvino times fp32 or bf16 inference on the CPU: '
            'drop --device cuda, --compile, --task train, --dtype fp16 and '
            '--with-cp')
    if importlib.util.find_spec('openvino') is None:
        raise UsageError('--compare-openvino: openvino not installed: pip '
                         'install -r requirements/deploy.txt')


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Check ``args``, time what they ask for, print the report and write
    it to ``args.json`` if given; return it."""
    quiet_upstream_noise()
    device, configs = check_args(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    gemm_size = args.gemm_size or (8192 if device.type == 'cuda' else 2048)
    gemm_dtypes = gemm_references(args.dtype, device)
    load_before = os.getloadavg()[0]
    before = {
        k: measure_gemm(gemm_size, d, device)
        for k, d in gemm_dtypes.items()
    }
    workloads = []
    try:
        variants = compared_variants(args)
        for path in configs or [None]:
            for variant in variants:
                # the same random weights for every variant: a detector's
                # cost depends on them (proposals, RoIs per FPN level)
                torch.manual_seed(0)
                workloads.append(
                    backbone_workload(args, device, **variant) if path is
                    None else model_workload(path, args, device, **variant))
        if args.compare_onnx or args.compare_openvino:
            torch.manual_seed(0)
            workloads = onnx_workloads(args, configs[0] if configs else None)
    except ValueError as e:
        raise UsageError(str(e)) from e
    with ExitStack() as stack:
        if args.freezing:  # read when the first step compiles
            import torch._inductor.config as inductor_config
            stack.enter_context(inductor_config.patch(freezing=True))
        timings = time_workloads(workloads, args.warmup, args.repeat, device,
                                 args.live_memory)
    gemm = {}
    for k, d in gemm_dtypes.items():
        after = measure_gemm(gemm_size, d, device)
        gemm[k] = dict(
            size=gemm_size,
            gflops_per_s=statistics.median(before[k] + after),
            median_before=statistics.median(before[k]),
            median_after=statistics.median(after),
            max=max(before[k] + after))
    report = summarize(args, device, workloads, timings, gemm,
                       (load_before, os.getloadavg()[0]))
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return report
