"""What a GPU check worker runs: each kind of step, in order, within the
deadline."""
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional

from .plan import Step, step_arg

# the checkout: the worker runs its tools/gpu_check.py and tools/benchmark.py
ROOT = Path(__file__).resolve().parents[3]
# Tags the worker prints around each step (its other output is the steps')
START, DONE = '@@gpu-check start ', '@@gpu-check done '


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
    archs = {step_arg(s['argv'], '--arch') for s in plan['steps']} - {None}
    batches = {int(step_arg(s['argv'], '--batch', 0))
               for s in plan['steps']} - {0}
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

    model = RegionViT(arch=step_arg(step.argv, '--arch')).to(device)
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
    arch, batch = step_arg(step.argv,
                           '--arch'), int(step_arg(step.argv, '--batch'))
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
