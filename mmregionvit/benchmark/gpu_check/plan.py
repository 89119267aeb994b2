"""The GPU check's steps, most important first, and the checks of its
arguments."""
import argparse
import re
from dataclasses import dataclass, field
from typing import Any, List, Optional

from .. import UsageError

TIMM_MODEL = 'swin_tiny_patch4_window7_224'
# --device cpu (trying the check itself, on a shared machine too): the H200
# estimates times this, a generous factor at small sizes
CPU_SLOWDOWN = 30


@dataclass
class Step:
    """One thing the check runs. ``kind``: ``tests`` (pytest), ``env``,
    ``attention`` (attention-matrix sizes), ``probe`` (SDPA kernels, host
    synchronisations), ``bench`` (``tools/benchmark.py`` with ``argv``) or
    ``profile``. ``estimate_s`` is its expected time on an H200, compiling
    included."""
    id: str
    kind: str
    title: str
    estimate_s: float
    argv: List[str] = field(default_factory=list)
    limit_s: Optional[float] = None  # its deadline, if not from estimate_s
    status: str = 'planned'
    duration_s: Optional[float] = None
    error: Optional[str] = None


def bench_id(arch: str,
             batch: int,
             task: str,
             dtype: str,
             variant: str = '') -> str:
    return '-'.join(
        filter(None, [arch, f'b{batch}', task[:5], dtype, variant]))


def build_plan(args: argparse.Namespace) -> List[Step]:
    """Every step, most important first. The first arch at the largest
    batch is the one the targets are read on."""
    h, w = args.input_size
    arch, batch = args.archs[0], max(args.batches)
    common = [
        'backbone', '--device', args.device, '--input-size',
        str(h),
        str(w), '--warmup',
        str(args.warmup), '--repeat',
        str(args.repeat)
    ] + (['--gemm-size', str(args.gemm_size)] if args.gemm_size else [])
    # H200 guesses at 672x1120: eager runs are dominated by building and
    # tracing the model (FLOP count), compiled ones by Inductor
    scale = max(1.0, h * w / (672 * 1120))
    weight = {'small': 1.0, 'base': 1.6}

    variants = {
        '': ('eager', []),
        'materialised': ('eager, every attention matrix kept (SDPA math '
                         'kernel)', ['--attention', 'materialised']),
        'compiled': ('eager against compiled', ['--compare-compile']),
        'timm': (f'against {args.timm}', ['--compare-timm', args.timm]),
    }

    def bench(arch_, batch_, task, dtype, variant=''):
        what, extra = variants[variant]
        seconds = 6 * weight.get(arch_,
                                 1.0) * scale * (1.5 if task == 'train' else 1)
        if variant == 'compiled':
            seconds = 75 * weight.get(arch_,
                                      1.0) * (2.2 if task == 'train' else 1)
        elif variant == 'timm':
            seconds += 10
        return Step(
            bench_id(arch_, batch_, task, dtype, variant), 'bench',
            f'RegionViT-{arch_}, batch {batch_}, {task}, {dtype}, {what}',
            seconds, [
                *common, '--arch', arch_, '--batch',
                str(batch_), '--task', task, '--dtype', dtype, *extra
            ])

    steps = [
        Step(
            'tests',
            'tests',
            'backbone tests on CUDA (pytest -m cuda)',
            90,
            limit_s=150),
        Step('env', 'env', 'environment', 3),
        Step('attention', 'attention', 'attention matrices per forward', 4),
        Step('probe', 'probe', 'SDPA kernels and host synchronisations', 25,
             ['--arch', arch]),
        bench(arch, batch, 'inference', 'bf16'),
        bench(arch, batch, 'train', 'bf16'),
        bench(arch, batch, 'train', 'bf16', 'materialised'),
        bench(arch, batch, 'inference', 'bf16', 'timm'),
        Step('profile', 'profile',
             f'profile: RegionViT-{arch}, batch {batch}, inference, bf16', 8,
             ['--arch', arch, '--batch', str(batch)]),
        bench(arch, batch, 'inference', 'bf16', 'compiled'),
    ]
    planned = {s.id for s in steps}
    for a in args.archs:
        for b in args.batches:
            for task in ('inference', 'train'):
                for dtype in args.dtypes:
                    step = bench(a, b, task, dtype)
                    if step.id not in planned:
                        steps.append(step)
    steps += [
        bench(arch, batch, 'train', 'fp32', 'materialised'),
        bench(arch, batch, 'inference', 'fp32', 'timm'),
    ]
    for a, task in [(arch, 'train'), *((a, t) for a in args.archs[1:]
                                       for t in ('inference', 'train'))]:
        steps.append(bench(a, batch, task, 'bf16', 'compiled'))
    for dtype in args.dtypes:
        steps.append(bench(arch, batch, 'inference', dtype, 'compiled'))
    steps.append(
        bench(arch, min(args.batches), 'inference', 'bf16', 'compiled'))
    unique = {}
    for step in steps:
        unique.setdefault(step.id, step)
    selected = [
        s for s in unique.values()
        if args.only is None or re.search(args.only, s.id)
    ]
    if args.device == 'cpu':  # trying the check itself
        selected = [s for s in selected if s.kind != 'tests']
        for step in selected:
            step.estimate_s *= CPU_SLOWDOWN
    return selected


def step_arg(argv: List[str], name: str, default: Any = None) -> Any:
    return argv[argv.index(name) + 1] if name in argv else default


def check_args(args: argparse.Namespace) -> None:
    """Check the arguments, raising :class:`UsageError`."""
    from mmregionvit.models.variants import VARIANTS
    bad = [a for a in args.archs if a not in VARIANTS]
    if bad:
        raise UsageError(
            f'--archs {" ".join(bad)}: not a variant; choose from '
            f'{", ".join(sorted(VARIANTS))}')
    counts = dict(
        budget=args.budget,
        batches=min(args.batches),
        warmup=args.warmup,
        repeat=args.repeat,
        gemm_size=args.gemm_size or 1,
        input_size=min(args.input_size))
    small = [k for k, v in counts.items() if v < 1]
    if small:
        raise UsageError(f'must be >= 1: {", ".join(small)}')
    if args.only is not None:
        try:
            re.compile(args.only)
        except re.error as e:
            raise UsageError(f'--only {args.only!r}: not a regular expression '
                             f'({e})') from e
    if args.out_dir.exists() and (not args.out_dir.is_dir()
                                  or any(args.out_dir.iterdir())):
        raise UsageError(f'{args.out_dir} exists and is not an empty folder; '
                         'give a new or empty one')
    if args.device == 'cuda' and not args.dry_run:
        import torch
        if not torch.cuda.is_available():
            raise UsageError('no CUDA device visible (torch '
                             f'{torch.__version__}, CUDA build '
                             f'{torch.version.cuda}); --device cpu runs the '
                             'steps on the CPU, --dry-run lists them')
    if not build_plan(args):
        raise UsageError(f'--only {args.only!r} selects no step; --dry-run '
                         'lists the step ids')
