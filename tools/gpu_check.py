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
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
TIMM_MODEL = 'swin_tiny_patch4_window7_224'
# Tags the worker prints around each step (its other output is the steps')
START, DONE = '@@gpu-check start ', '@@gpu-check done '
LOG_LIMIT = 8 * 2**20  # bytes of log.txt
STARTUP_S = 120  # a worker's imports and CUDA start before its first step
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


# ----------------------------------------------------------------- plan


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


# --------------------------------------------------------------- running


class Run:
    """The state of one check: its steps, results and output files."""

    def __init__(self, args: argparse.Namespace, steps: List[Step]) -> None:
        self.args = args
        self.steps = steps
        self.results: Dict[str, Any] = {}
        self.started = time.time()
        self.deadline = self.started + args.budget
        self.work = Path(tempfile.mkdtemp(prefix='gpu-check-'))
        self.log = None
        self.log_bytes = 0

    def remaining(self) -> float:
        return self.deadline - time.time()

    def write_log(self, text: str) -> None:
        if self.log is None or self.log_bytes > LOG_LIMIT:
            return
        self.log.write(text)
        self.log_bytes += len(text)
        if self.log_bytes > LOG_LIMIT:
            self.log.write('\n[log cut at 8 MiB]\n')
        self.log.flush()

    def save(self) -> None:
        report = build_report(self)
        out = self.args.out_dir
        (out / 'report.json').write_text(json.dumps(report, indent=1))
        (out / 'report.md').write_text(render_markdown(report))

    def collect(self, step: Step) -> None:
        """Read a finished step's result file."""
        path = self.work / f'{step.id}.json'
        if not path.exists():
            return
        result = json.loads(path.read_text())
        step.status, step.error = result['status'], result.get('error')
        step.duration_s = result.get('duration_s')
        if 'data' in result:
            self.results[step.id] = result['data']
        if step.kind == 'profile' and 'data' in result:
            (self.args.out_dir / 'profile.txt').write_text(
                result['data']['table'])


def step_timeout(step: Step, remaining: float) -> float:
    """Seconds a step may take before it is killed."""
    limit = step.limit_s or max(3 * step.estimate_s, step.estimate_s + 60)
    return max(0.0, min(limit, remaining))


def start_child(cmd: List[str]) -> subprocess.Popen:
    """``cmd`` in a process group of its own (so that killing it also ends
    the processes it started, e.g. Inductor's compile workers), its
    output merged into one text pipe."""
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED='1'),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True)


def kill_child(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # already gone
        pass


def run_tests(run: Run, step: Step) -> None:
    """pytest on the CUDA-marked tests, in a child process."""
    junit = run.work / 'junit.xml'
    cmd = [
        sys.executable, '-m', 'pytest', 'tests/test_cuda.py', '-m', 'cuda',
        '-q', '-rfEs', '-p', 'no:cacheprovider', f'--junitxml={junit}'
    ]
    start = time.time()
    proc = start_child(cmd)
    try:
        output, _ = proc.communicate(
            timeout=step_timeout(step, run.remaining()))
        step.status = 'passed' if proc.returncode == 0 else 'failed'
        if proc.returncode not in (0, 1):
            step.error = f'pytest exited with {proc.returncode}'
    except subprocess.TimeoutExpired:
        kill_child(proc)
        output, _ = proc.communicate()
        step.status, step.error = 'timeout', 'pytest overran its deadline'
    run.write_log(output)
    step.duration_s = time.time() - start
    if junit.exists():
        run.results['tests'] = parse_junit(junit)


def parse_junit(path: Path) -> Dict[str, Any]:
    """Counts and one line per test from a JUnit XML file."""
    cases = []
    for case in ET.parse(path).getroot().iter('testcase'):
        outcome, message = 'passed', ''
        for tag in ('failure', 'error', 'skipped'):
            node = case.find(tag)
            if node is not None:
                outcome = 'failed' if tag == 'failure' else tag
                message = (node.get('message') or '').splitlines()[0][:300] \
                    if node.get('message') else ''
                break
        cases.append(
            dict(
                name=case.get('name'),
                outcome=outcome,
                seconds=float(case.get('time', 0)),
                message=message))
    counts: Dict[str, int] = {}
    for case in cases:
        counts[case['outcome']] = counts.get(case['outcome'], 0) + 1
    return dict(counts=counts, cases=cases)


def _read_lines(stream, lines: 'queue.Queue[Optional[str]]') -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def run_worker_steps(run: Run, steps: List[Step]) -> None:
    """Run ``steps`` in a worker process. A step that overruns its deadline
    is killed with the worker, and a new worker takes the steps after it;
    so does one after a worker that died in a step."""
    pending = list(steps)
    while pending:
        plan = run.work / 'plan.json'
        plan.write_text(
            json.dumps(
                dict(
                    steps=[asdict(s) for s in pending],
                    deadline=run.deadline,
                    device=run.args.device,
                    dtypes=run.args.dtypes,
                    input_size=run.args.input_size)))
        proc = start_child([
            sys.executable,
            str(Path(__file__).resolve()), '--worker',
            str(plan),
            str(run.work)
        ])
        lines: 'queue.Queue[Optional[str]]' = queue.Queue()
        threading.Thread(
            target=_read_lines, args=(proc.stdout, lines),
            daemon=True).start()
        by_id = {s.id: s for s in pending}
        current, since, killed = None, time.time(), False
        while True:
            limit = (
                step_timeout(by_id[current], run.remaining())
                if current else max(run.remaining(), 0) + STARTUP_S)
            try:
                line = lines.get(timeout=max(0.1, since + limit - time.time()))
            except queue.Empty:
                kill_child(proc)
                killed = True
                break
            if line is None:
                break
            if line.startswith(START):
                current, since = line[len(START):].strip(), time.time()
                by_id[current].status = 'running'
            elif line.startswith(DONE):
                run.collect(by_id[line[len(DONE):].strip()])
                current, since = None, time.time()
            else:
                run.write_log(line)
                continue
            run.save()
        proc.wait()
        if current:  # killed at its deadline, or the worker died in it
            step = by_id[current]
            step.duration_s = time.time() - since
            step.status = 'timeout' if killed else 'error'
            step.error = (f'killed after {step.duration_s:.0f} s (its '
                          'deadline)' if killed else
                          f'the worker died in it (exit {proc.returncode})')
            run.write_log(f'\n[{step.id}: {step.error}]\n')
        started = any(s.status != 'planned' for s in pending)
        pending = [s for s in pending if s.status == 'planned']
        if pending and (not started or run.remaining() <= 0):
            why = ('budget spent' if run.remaining() <= 0 else
                   f'the worker stopped before it (exit {proc.returncode})')
            for step in pending:
                step.status, step.error = 'skipped', why
            pending = []
        run.save()


def run_check(args: argparse.Namespace) -> int:
    steps = build_plan(args)
    run = Run(args, steps)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        run.save()
        for step in steps:
            print(f'{step.estimate_s:6.0f} s  {step.id:34s} {step.title}')
        print(f'planned {sum(s.estimate_s for s in steps):.0f} s of steps '
              f'for a budget of {args.budget:.0f} s')
        return 0
    with open(args.out_dir / 'log.txt', 'w') as log:
        run.log = log
        run.save()
        for step in steps:
            if step.kind == 'tests':
                step.status = 'running'
                run.save()
                run_tests(run, step)
                run.save()
        run_worker_steps(run, [s for s in steps if s.kind != 'tests'])
    run.save()
    shutil.rmtree(run.work, ignore_errors=True)
    print((args.out_dir / 'report.md').read_text())
    bad = [s for s in steps if s.status in ('failed', 'error', 'timeout')]
    return 1 if bad else 0


# ---------------------------------------------------------------- worker


def worker_main(plan_path: str, work: str) -> None:
    """Run the steps of a plan file, writing ``WORK/<id>.json`` for each;
    steps that no longer fit before the deadline are skipped. Estimates
    are scaled by how long the steps of their kind took against theirs."""
    plan = json.loads(Path(plan_path).read_text())
    pace: Dict[str, List[float]] = {}  # kind -> measured / estimated
    for spec in plan['steps']:
        step = Step(**spec)
        kind = 'compiled' if '--compare-compile' in step.argv else step.kind
        ratios = pace.get(kind, [1.0])
        expected = step.estimate_s * sum(ratios) / len(ratios)
        print(START + step.id, flush=True)
        result: Dict[str, Any] = dict(status='skipped')
        if expected > plan['deadline'] - time.time():
            result['error'] = (f'needs about {expected:.0f} s, '
                               f'{max(0, plan["deadline"] - time.time()):.0f}'
                               ' s left')
        else:
            start = time.time()
            try:
                result['data'] = STEP_KINDS[step.kind](step, plan)
                result['status'] = 'done'
            except (Exception, SystemExit) as e:  # benchmark.py exits
                traceback.print_exc()  # recorded; the next step still runs
                result['status'] = 'error'
                result['error'] = f'{type(e).__name__}: {e}'[:2000]
            result['duration_s'] = time.time() - start
            pace.setdefault(kind, []).append(
                min(3.0, max(0.3, result['duration_s'] / step.estimate_s)))
            release_memory()
        (Path(work) / f'{step.id}.json').write_text(json.dumps(result))
        print(DONE + step.id, flush=True)


def release_memory() -> None:
    import gc

    import torch
    torch._dynamo.reset()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def step_env(step: Step, plan: dict) -> Dict[str, Any]:
    """Versions and device properties."""
    import platform

    import mmengine
    import numpy
    import timm
    import torch
    env: Dict[str, Any] = dict(
        python=platform.python_version(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        timm=timm.__version__,
        mmengine=mmengine.__version__,
        numpy=numpy.__version__,
        float32_matmul_precision=torch.get_float32_matmul_precision(),
        cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
        sdpa_backends_enabled=dict(
            flash=torch.backends.cuda.flash_sdp_enabled(),
            efficient=torch.backends.cuda.mem_efficient_sdp_enabled(),
            cudnn=torch.backends.cuda.cudnn_sdp_enabled(),
            math=torch.backends.cuda.math_sdp_enabled()))
    if plan['device'] == 'cuda':
        props = torch.cuda.get_device_properties(0)
        env.update(
            gpu=props.name,
            capability=f'{props.major}.{props.minor}',
            multiprocessors=props.multi_processor_count,
            memory_gib=props.total_memory / 2**30,
            cudnn=torch.backends.cudnn.version())
        try:
            env['driver'] = subprocess.run([
                'nvidia-smi', '--query-gpu=driver_version',
                '--format=csv,noheader'
            ],
                                           capture_output=True,
                                           text=True,
                                           timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            env['driver'] = None
    return env


def attention_elements(arch: str, batch: int, size: List[int]) -> int:
    """Elements of every attention matrix one forward computes (local and
    regional attention of every block), counted on the meta device."""
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    from mmregionvit.models import RegionViT
    total = 0

    class Count(TorchFunctionMode):

        def __torch_function__(self, func, types, args=(), kwargs=None):
            nonlocal total
            if func is F.scaled_dot_product_attention:
                q, k = args[0], args[1]
                total += q.shape[:-1].numel() * k.shape[-2]
            return func(*args, **(kwargs or {}))

    model = RegionViT(arch=arch).to('meta')
    with Count(), torch.no_grad():
        model(torch.empty(batch, 3, *size, device='meta'))
    return total


def step_attention(step: Step, plan: dict) -> Dict[str, Any]:
    """The attention matrices of the benchmarked forwards: what keeping
    every one of them for backward would cost."""
    archs = {_arg(s['argv'], '--arch') for s in plan['steps']} - {None}
    batches = {int(_arg(s['argv'], '--batch', 0)) for s in plan['steps']} - {0}
    out = {}
    for arch in sorted(archs):
        for batch in sorted(batches):
            n = attention_elements(arch, batch, plan['input_size'])
            out[f'{arch}-b{batch}'] = dict(
                elements=n, mb_fp32=4 * n / 2**20, mb_16bit=2 * n / 2**20)
    return out


def step_probe(step: Step, plan: dict) -> Dict[str, Any]:
    """For the first arch at batch 1: which SDPA kernel each attention call
    takes (inference, forward and backward of training; in each dtype
    checked), how its mask is laid out, and how many host synchronisations
    CUDA's sync debug mode reports in each phase."""
    import warnings

    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    from mmregionvit.models import RegionViT
    device = torch.device(plan['device'])
    kernels = {
        '_scaled_dot_product_efficient_attention',
        '_scaled_dot_product_flash_attention',
        '_scaled_dot_product_cudnn_attention',
        '_scaled_dot_product_flash_attention_for_cpu'
    }
    kernels |= {k + '_backward' for k in kernels}  # SDPA's fused kernels

    class Ops(TorchDispatchMode):

        def __init__(self) -> None:
            super().__init__()
            self.names: List[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    class Calls(TorchFunctionMode):
        """Each SDPA call: its mask's layout and the kernels it ran."""

        def __init__(self) -> None:
            super().__init__()
            self.calls: List[Dict[str, Any]] = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is not F.scaled_dot_product_attention:
                return func(*args, **kwargs)
            mask = kwargs.get('attn_mask')
            with Ops() as ops:
                out = func(*args, **kwargs)
            self.calls.append(
                dict(
                    mask=None if mask is None else dict(
                        shape=list(mask.shape),
                        stride=list(mask.stride()),
                        dtype=str(mask.dtype).replace('torch.', ''),
                        requires_grad=mask.requires_grad),
                    kernels=[n for n in ops.names if n in kernels]
                    or ['math (decomposed)'],
                    mask_padded_by_sdpa='constant_pad_nd' in ops.names))
            return out

    def syncs(fn) -> Optional[int]:
        if device.type != 'cuda':
            return None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            torch.cuda.set_sync_debug_mode('warn')
            try:
                fn()
                torch.cuda.set_sync_debug_mode('default')
                torch.cuda.synchronize()
            finally:
                torch.cuda.set_sync_debug_mode('default')
        return sum('synchroniz' in str(w.message) for w in caught)

    def summary(calls):
        """Distinct (mask, kernels) combinations with their counts."""
        seen: Dict[str, Dict[str, Any]] = {}
        for call in calls:
            key = json.dumps(call, sort_keys=True)
            seen.setdefault(key, dict(call, count=0))['count'] += 1
        return list(seen.values())

    model = RegionViT(arch=_arg(step.argv, '--arch')).to(device)
    x = torch.randn(1, 3, *plan['input_size'], device=device)
    out = {}
    for dtype in plan['dtypes']:
        cast = dict(bf16=torch.bfloat16, fp16=torch.float16).get(dtype)
        amp = torch.autocast(device.type, dtype=cast, enabled=bool(cast))
        with amp, torch.no_grad():
            model.eval()(x)  # warm-up
            inference = Calls()
            with inference:
                model(x)
            infer_syncs = syncs(lambda: model(x))
        model.train()
        with amp:
            training = Calls()
            with training:
                outs = model(x)
        backward = Ops()
        with backward:
            sum(o.float().mean() for o in outs).backward()
        with amp:
            outs = None
            train_syncs = syncs(lambda: model(x))
        model.zero_grad(set_to_none=True)
        out[dtype] = dict(
            inference=summary(inference.calls),
            train_forward=summary(training.calls),
            backward_kernels=sorted(
                {n
                 for n in backward.names if n in kernels}),
            host_syncs=dict(
                inference_forward=infer_syncs, train_forward=train_syncs))
    return out


def step_bench(step: Step, plan: dict) -> Dict[str, Any]:
    if str(ROOT / 'tools') not in sys.path:
        sys.path.insert(0, str(ROOT / 'tools'))
    import benchmark
    return benchmark.main(step.argv)


def step_profile(step: Step, plan: dict) -> Dict[str, Any]:
    """One profiled inference step (bf16 autocast, eager) after two warm-up
    steps: the top ops by device time, and device time by kind of op."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from mmregionvit.models import RegionViT
    device = torch.device(plan['device'])
    arch, batch = _arg(step.argv, '--arch'), int(_arg(step.argv, '--batch'))
    model = RegionViT(arch=arch).to(device).eval()
    x = torch.randn(batch, 3, *plan['input_size'], device=device)
    cuda = device.type == 'cuda'

    def forward():
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16):
            model(x)

    for _ in range(2):
        forward()
    activities = [ProfilerActivity.CPU
                  ] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        forward()
        if cuda:
            torch.cuda.synchronize()
    key = 'self_device_time_total' if cuda else 'self_cpu_time_total'
    events = prof.key_averages()
    by_kind: Dict[str, float] = {}
    for event in events:
        if not event.key.startswith('aten::'):
            continue  # kernels are counted through the aten op launching them
        by_kind[op_kind(event.key)] = by_kind.get(op_kind(event.key), 0.0) \
            + getattr(event, key) / 1e3
    total = sum(by_kind.values())
    return dict(
        arch=arch,
        batch=batch,
        time_kind=key,
        ms_by_kind={
            k: round(v, 3)
            for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])
        },
        total_ms=total,
        table=events.table(
            sort_by=key, row_limit=30, max_name_column_width=70))


def op_kind(name: str) -> str:
    """The kind of an aten op, for the profile's summary."""
    kinds = [('attention', ('attention', )),
             ('matmul', ('mm', 'matmul', 'linear')),
             ('convolution', ('conv', )), ('layer norm', ('layer_norm', )),
             ('copy / layout', ('copy', 'cat', 'clone', 'contiguous', 'pad',
                                'index', 'fill', 'empty', 'repeat')),
             ('element-wise', ('gelu', 'add', 'mul', 'div', 'sub'))]
    op = name.removeprefix('aten::')
    for kind, words in kinds:
        if any(w in op for w in words):
            return kind
    return 'other'


STEP_KINDS = dict(
    env=step_env,
    attention=step_attention,
    probe=step_probe,
    bench=step_bench,
    profile=step_profile)

# ---------------------------------------------------------------- report


def build_report(run: Run) -> Dict[str, Any]:
    """Everything the check knows so far, as one JSON-able dict."""
    args, results = run.args, run.results
    benches = {
        s.id: results[s.id]
        for s in run.steps if s.kind == 'bench' and s.id in results
    }
    report = dict(
        check=dict(
            options={
                k: str(v) if isinstance(v, Path) else v
                for k, v in vars(args).items()
            },
            budget_s=args.budget,
            elapsed_s=time.time() - run.started,
            device=args.device,
            input_size=args.input_size,
            dry_run=args.dry_run,
            complete=all(
                s.status not in ('planned', 'running') for s in run.steps)),
        steps=[asdict(s) for s in run.steps],
        env=results.get('env'),
        tests=results.get('tests'),
        attention_matrices=results.get('attention'),
        probe=results.get('probe'),
        profile={
            k: v
            for k, v in (results.get('profile') or {}).items() if k != 'table'
        } or None,
        benchmarks=benches,
        rows=benchmark_rows(run.steps, benches),
        targets=targets(args, benches, results.get('attention')),
        comparisons=comparisons(args, benches))
    return report


def _arg(argv: List[str], name: str, default: Any = None) -> Any:
    return argv[argv.index(name) + 1] if name in argv else default


def benchmark_rows(steps: List[Step],
                   benches: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One row per timed workload."""
    rows = []
    for step in steps:
        report = benches.get(step.id)
        if not report:
            continue
        for work in report['workloads']:
            gemm = report['gemm']
            rows.append(
                dict(
                    step=step.id,
                    name=work['name'],
                    batch=report['batch'],
                    task=report['task'],
                    dtype=report['dtype'],
                    attention=_arg(step.argv, '--attention', 'fused'),
                    median_ms=work['latency_ms']['median'],
                    images_per_s=work['images_per_s'],
                    peak_mb=work['memory']['peak_mb'],
                    gmacs=work['gmacs'],
                    tflops=work['achieved_gflops_per_s'] / 1e3,
                    bf16_fraction=work.get('gemm_bf16_fraction'),
                    own_fraction=work.get(f'gemm_{report["dtype"]}_fraction'),
                    bf16_gemm_tflops=gemm.get('bf16', {}).get(
                        'gflops_per_s', 0) / 1e3 or None))
    return rows


def targets(args: argparse.Namespace, benches: Dict[str, Any],
            attention: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The two targets, read on the first arch at the largest batch."""
    arch, batch = args.archs[0], max(args.batches)
    infer = [
        dict(name=w['name'], fraction=w.get('gemm_bf16_fraction'))
        for key in (bench_id(arch, batch, 'inference', 'bf16'),
                    bench_id(arch, batch, 'inference', 'bf16', 'compiled'))
        if key in benches for w in benches[key]['workloads']
    ]
    speed = dict(
        target=f'RegionViT-{arch} bf16 inference, batch {batch}: >= 0.40 of '
        'the bf16 matmul rate measured in the same run',
        runs=infer,
        met=None if not infer else any(
            (r['fraction'] or 0) >= 0.40 for r in infer))
    memory = dict(
        target=f'RegionViT-{arch} training, batch {batch}: peak memory '
        'below that of the same step keeping every attention matrix (SDPA '
        'math kernel)',
        runs=[])
    matrices = (attention or {}).get(f'{arch}-b{batch}')
    for dtype in ('bf16', 'fp32'):
        ours = benches.get(bench_id(arch, batch, 'train', dtype))
        mat = benches.get(
            bench_id(arch, batch, 'train', dtype, 'materialised'))
        if not ours or not mat:
            continue
        peak, mat_peak = (
            r['workloads'][0]['memory']['peak_mb'] for r in (ours, mat))
        memory['runs'].append(
            dict(
                dtype=dtype,
                peak_mb=peak,
                materialised_peak_mb=mat_peak,
                ratio=peak / mat_peak,
                attention_matrices_mb=None if not matrices else
                matrices['mb_fp32' if dtype == 'fp32' else 'mb_16bit']))
    memory['met'] = None if not memory['runs'] else all(
        r['peak_mb'] < r['materialised_peak_mb'] for r in memory['runs'])
    return dict(speed=speed, memory=memory)


def comparisons(args: argparse.Namespace,
                benches: Dict[str, Any]) -> Dict[str, Any]:
    """bf16 and fp16 against fp32, compiled against eager, RegionViT
    against the timm model, from the runs that exist."""
    out: Dict[str, Any] = dict(dtype=[], compiled=[], timm=[])
    for arch in args.archs:
        for batch in args.batches:
            for task in ('inference', 'train'):
                fp32 = benches.get(bench_id(arch, batch, task, 'fp32'))
                for dtype in ('bf16', 'fp16'):
                    other = benches.get(bench_id(arch, batch, task, dtype))
                    if fp32 and other:
                        a, b = (
                            r['workloads'][0]['latency_ms']['median']
                            for r in (fp32, other))
                        out['dtype'].append(
                            dict(
                                arch=arch,
                                batch=batch,
                                task=task,
                                dtype=dtype,
                                speedup_over_fp32=a / b))
    for key, report in benches.items():
        compare = report.get('compare')
        if not compare:
            continue
        if report.get('compare_compile'):
            out['compiled'].append(
                dict(
                    step=key,
                    eager_ms=report['workloads'][0]['latency_ms']['median'],
                    compiled_ms=report['workloads'][1]['latency_ms']['median'],
                    speedup=1 / compare['latency_ratio_b_over_a'],
                    first_step_compiled_s=report['workloads'][1]
                    ['first_iter_ms'] / 1e3))
        elif report.get('compare_timm'):
            a, b = report['workloads']
            out['timm'].append(
                dict(
                    step=key,
                    names=[a['name'], b['name']],
                    gmacs=[a['gmacs'], b['gmacs']],
                    median_ms=[
                        a['latency_ms']['median'], b['latency_ms']['median']
                    ],
                    ms_per_gmac=compare['ms_per_gmac'],
                    timm_over_regionvit_per_gmac=compare[
                        'ms_per_gmac_ratio_b_over_a']))
    return out


def _fmt(value: Any, spec: str = '.3g') -> str:
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:.0f}' if abs(value) >= 100 else format(value, spec)
    return str(value)


def _table(headers: List[str], rows: List[List[Any]]) -> str:
    lines = ['| ' + ' | '.join(headers) + ' |', '|' + '---|' * len(headers)]
    lines += ['| ' + ' | '.join(_fmt(v) for v in row) + ' |' for row in rows]
    return '\n'.join(lines) + '\n'


def render_markdown(report: Dict[str, Any]) -> str:
    """The report as markdown tables."""
    check, env = report['check'], report['env'] or {}
    h, w = check['input_size']
    md = [
        '# GPU check\n', f'Device {check["device"]}'
        f'{" (" + env["gpu"] + ")" if env.get("gpu") else ""}, input '
        f'{h}x{w}; {check["elapsed_s"]:.0f} s of a {check["budget_s"]:.0f} '
        f's budget; ' + ('dry run (nothing ran)' if check['dry_run'] else
                         'complete' if check['complete'] else 'in progress'),
        '\n'
    ]
    if env:
        md += [
            '\n## Environment\n\n',
            _table(['key', 'value'], [[k, v] for k, v in env.items()])
        ]
    md += [
        '\n## Steps\n\n',
        _table(['step', 'status', 'seconds', 'estimate', 'note'], [[
            s['id'], s['status'], s['duration_s'], s['estimate_s'], s['error']
            or ''
        ] for s in report['steps']])
    ]
    tests = report['tests']
    if tests:
        md += [
            '\n## Tests on the device\n\n',
            ', '.join(f'{n} {k}' for k, n in sorted(tests['counts'].items())),
            '\n\n'
        ]
        bad = [c for c in tests['cases'] if c['outcome'] != 'passed']
        if bad:
            md.append(
                _table(['test', 'outcome', 'message'],
                       [[c['name'], c['outcome'], c['message']] for c in bad]))
    t = report['targets']
    md += ['\n## Targets\n\n']
    speed, memory = t['speed'], t['memory']
    md.append(f'- {speed["target"]}: **{verdict(speed["met"])}**' +
              ''.join(f'; {r["name"]} {_fmt(r["fraction"], ".3f")}'
                      for r in speed['runs']) + '\n')
    md.append(f'- {memory["target"]}: **{verdict(memory["met"])}**' +
              ''.join(f'; {r["dtype"]}: {r["peak_mb"]:.0f} MB against '
                      f'{r["materialised_peak_mb"]:.0f} MB ({r["ratio"]:.2f}'
                      f'; the attention matrices alone '
                      f'{_fmt(r["attention_matrices_mb"], ".0f")} MB)'
                      for r in memory['runs']) + '\n')
    if report['rows']:
        md += [
            '\n## Benchmarks\n\n',
            'Median of the timed steps; peak memory: CUDA '
            'max_memory_allocated (on a CPU: process RSS), weights, '
            'optimizer state and gradients included; fractions of the GEMM '
            'rates measured in the same run (sizes in report.json).'
            '\n\n',
            _table([
                'workload', 'batch', 'task', 'dtype', 'attention', 'ms',
                'images/s', 'peak MB', 'GMACs', 'TFLOP/s', 'of bf16 GEMM',
                'of own-dtype GEMM', 'bf16 GEMM TFLOP/s'
            ], [[
                r['name'], r['batch'], r['task'], r['dtype'], r['attention'],
                r['median_ms'], r['images_per_s'], r['peak_mb'], r['gmacs'],
                r['tflops'], r['bf16_fraction'], r['own_fraction'],
                r['bf16_gemm_tflops']
            ] for r in report['rows']])
        ]
    comp = report['comparisons']
    if comp['dtype']:
        md += [
            '\n## Reduced precision against fp32 (eager)\n\n',
            _table(['arch', 'batch', 'task', 'dtype', 'speed-up'], [[
                c['arch'], c['batch'], c['task'], c['dtype'],
                c['speedup_over_fp32']
            ] for c in comp['dtype']])
        ]
    if comp['compiled']:
        md += [
            '\n## Compiled against eager (same process)\n\n',
            _table([
                'run', 'eager ms', 'compiled ms', 'speed-up',
                'first compiled step s'
            ], [[
                c['step'], c['eager_ms'], c['compiled_ms'], c['speedup'],
                c['first_step_compiled_s']
            ] for c in comp['compiled']])
        ]
    if comp['timm']:
        md += [
            '\n## Against timm (same process, per GMAC)\n\n',
            _table([
                'run', 'models', 'GMACs', 'ms', 'ms per GMAC', 'B/A per GMAC'
            ], [[
                c['step'], ' / '.join(c['names']), ' / '.join(
                    f'{g:.1f}'
                    for g in c['gmacs']), ' / '.join(f'{m:.2f}'
                                                     for m in c['median_ms']),
                ' / '.join(f'{m:.3f}' for m in c['ms_per_gmac']),
                c['timm_over_regionvit_per_gmac']
            ] for c in comp['timm']])
        ]
    if report['attention_matrices']:
        md += [
            '\n## Attention matrices per forward\n\n',
            _table(['arch, batch', 'elements', 'MB fp32', 'MB 16-bit'],
                   [[k, v['elements'], v['mb_fp32'], v['mb_16bit']]
                    for k, v in report['attention_matrices'].items()])
        ]
    if report['profile']:
        p = report['profile']
        md += [
            f'\n## Profile (RegionViT-{p["arch"]}, batch {p["batch"]}, '
            'bf16 inference; profile.txt has the top ops)\n\n',
            _table(['kind of op', 'ms', 'share'],
                   [[k, v, v / p['total_ms'] if p['total_ms'] else None]
                    for k, v in p['ms_by_kind'].items()])
        ]
    if report['probe']:
        md += ['\n## SDPA kernels and host synchronisations\n\n']
        for dtype, r in report['probe'].items():
            md.append(f'- {dtype}: host syncs {r["host_syncs"]}; backward '
                      f'kernels {", ".join(r["backward_kernels"]) or "-"}\n')
            for phase in ('inference', 'train_forward'):
                for c in r[phase]:
                    mask = c['mask']
                    md.append(
                        f'  - {phase}: {c["count"]} call(s), '
                        f'{", ".join(c["kernels"])}; mask ' +
                        ('none' if mask is
                         None else f'{mask["shape"]} strides {mask["stride"]} '
                         f'{mask["dtype"]}, grad {mask["requires_grad"]}, '
                         f'padded by SDPA {c["mask_padded_by_sdpa"]}') + '\n')
    return ''.join(md)


def verdict(met: Optional[bool]) -> str:
    return {True: 'met', False: 'missed', None: 'not measured'}[met]


# ------------------------------------------------------------------ main


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


def validate(parser: argparse.ArgumentParser,
             args: argparse.Namespace) -> None:
    from mmregionvit.models.variants import VARIANTS
    bad = [a for a in args.archs if a not in VARIANTS]
    if bad:
        parser.error(f'--archs {" ".join(bad)}: not a variant; choose from '
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
        parser.error(f'must be >= 1: {", ".join(small)}')
    if args.only is not None:
        try:
            re.compile(args.only)
        except re.error as e:
            parser.error(f'--only {args.only!r}: not a regular expression '
                         f'({e})')
    if args.out_dir.exists() and (not args.out_dir.is_dir()
                                  or any(args.out_dir.iterdir())):
        parser.error(f'{args.out_dir} exists and is not an empty folder; '
                     'give a new or empty one')
    if args.device == 'cuda' and not args.dry_run:
        import torch
        if not torch.cuda.is_available():
            parser.error('no CUDA device visible (torch '
                         f'{torch.__version__}, CUDA build '
                         f'{torch.version.cuda}); --device cpu runs the '
                         'steps on the CPU, --dry-run lists them')
    if not build_plan(args):
        parser.error(f'--only {args.only!r} selects no step; --dry-run '
                     'lists the step ids')


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['--worker']:
        worker_main(*argv[1:])
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    validate(parser, args)
    return run_check(args)


if __name__ == '__main__':
    sys.exit(main())
