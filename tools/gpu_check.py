#!/usr/bin/env python
"""The GPU check: the backbone's CUDA tests and benchmarks in one run that
keeps to a time budget, reported as JSON and markdown.

    python tools/gpu_check.py OUT_DIR [--budget SECONDS] [--dry-run]

``bash tools/gpu_check.sh run OUT_DIR`` installs the wheels the check brings
(``bash tools/gpu_check.sh prepare``) and runs this. Steps run in order of
priority: the CUDA tests, the two targets' runs, RegionViT against a timm
backbone, a profile, then the rest of the benchmark matrix and the compiled
runs. A step that no longer fits in what is left of the budget is skipped
and reported as such. Steps run in a worker process; one that overruns its
deadline is killed and the worker restarted for the steps after it.
OUT_DIR receives ``report.json`` (everything), ``report.md`` (tables),
``log.txt`` (the output of every step) and ``profile.txt``; both reports
are rewritten after every step, so a run cut short still leaves them.
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

from mmregionvit.benchmark import UsageError
from mmregionvit.benchmark.gpu_check.plan import TIMM_MODEL, check_args
from mmregionvit.benchmark.gpu_check.runner import run_check
from mmregionvit.benchmark.gpu_check.steps import worker_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'out_dir',
        type=Path,
        help='folder for report.json, report.md, log.txt and profile.txt '
        '(new or empty)')
    parser.add_argument(
        '--budget',
        type=float,
        default=420,
        help='seconds for all steps (default 420: 7 minutes)')
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='write the plan as the report and list it; run nothing')
    parser.add_argument(
        '--only',
        metavar='REGEX',
        help='run the steps whose id matches (see --dry-run for ids)')
    parser.add_argument(
        '--device',
        choices=['cuda', 'cpu'],
        default='cuda',
        help='cpu: run the steps on the CPU (to try the check itself)')
    parser.add_argument(
        '--input-size',
        type=int,
        nargs=2,
        default=[672, 1120],
        metavar=('H', 'W'))
    parser.add_argument(
        '--archs',
        nargs='+',
        default=['small', 'base'],
        help='the targets are read on the first')
    parser.add_argument(
        '--batches',
        type=int,
        nargs='+',
        default=[1, 8],
        help='the targets are read on the largest')
    parser.add_argument(
        '--dtypes',
        nargs='+',
        choices=['fp32', 'bf16', 'fp16'],
        default=['fp32', 'bf16', 'fp16'])
    parser.add_argument(
        '--timm',
        default=TIMM_MODEL,
        metavar='MODEL',
        help=f'timm backbone compared per GMAC (default {TIMM_MODEL})')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--repeat', type=int, default=10)
    parser.add_argument(
        '--gemm-size',
        type=int,
        help="matmul size of the GEMM references (benchmark.py's default: "
        '8192 on CUDA)')
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['--worker']:
        worker_main(*argv[1:])
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_args(args)
    except UsageError as e:
        parser.error(str(e))
    return run_check(args)


if __name__ == '__main__':
    sys.exit(main())
