"""The GPU check's report: benchmark rows, the two targets, comparisons,
and the markdown tables."""
import argparse
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from .plan import Step, bench_id, step_arg

if TYPE_CHECKING:
    from .runner import Run


def build_report(run: 'Run') -> Dict[str, Any]:
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
                    attention=step_arg(step.argv, '--attention', 'fused'),
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
