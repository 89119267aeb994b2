"""The benchmark's report: JSON fields, warnings and the printed table."""
import argparse
import os
from typing import Any, Callable, Dict, List, Tuple

import torch

from .timing import Workload


def _device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    with open('/proc/cpuinfo') as f:
        names = [
            line.split(':', 1)[1].strip() for line in f
            if line.startswith('model name')
        ]
    return f'{names[0] if names else "CPU"} ({os.cpu_count()} logical CPUs)'


def summarize(args: argparse.Namespace, device: torch.device,
              workloads: List[Workload], timings: List[Dict[str, Any]],
              gemm: Dict[str, Dict[str, Any]],
              load: Tuple[float, float]) -> Dict[str, Any]:
    """The JSON report."""
    factor = 3 if args.task == 'train' else 1
    results = []
    for work, timing in zip(workloads, timings):
        median_s = timing['latency_ms']['median'] / 1e3
        achieved = 2 * factor * work.macs / median_s / 1e9
        res = dict(
            name=work.name,
            **timing,
            images_per_s=args.batch / median_s,
            gmacs=work.macs / 1e9,
            step_flops_per_forward_mac=2 * factor,
            achieved_gflops_per_s=achieved,
            uncounted_ops=work.uncounted_ops,
            notes=work.notes,
            **work.extra)
        for dtype, ref in gemm.items():
            res[f'gemm_{dtype}_fraction'] = achieved / ref['gflops_per_s']
        results.append(res)
    warnings = []
    cpus = os.cpu_count() or 1
    if load[0] >= cpus:
        warnings.append(
            f'1-min load average {load[0]:.1f} on {cpus} CPUs '
            'before the run: the machine is shared, timings are '
            'indicative' +
            ('; busy cores stall multi-threaded steps, '
             '--threads 1 is steadier' if torch.get_num_threads() > 1 else ''))
    for dtype, g in gemm.items():
        lo, hi = sorted((g['median_before'], g['median_after']))
        if hi > 1.2 * lo:
            warnings.append(f'{dtype} GEMM rate moved from '
                            f'{g["median_before"]:.0f} to '
                            f'{g["median_after"]:.0f} GFLOP/s during the run')
    dets = [
        r['detections_per_image'] for r in results
        if 'detections_per_image' in r
    ]
    if dets and (min(dets) == 0 or len(set(dets)) > 1):
        warnings.append(
            f'detections/image {dets} with random weights; the mask head runs '
            'per detection, so its cost varies: pin it to max_per_img with '
            '--cfg-options model.test_cfg.rcnn.score_thr=0.0 (two-stage) or '
            'model.test_cfg.score_thr=0.0 (one-stage)')
    report = dict(
        mode=args.mode,
        task=args.task,
        dtype=args.dtype,
        device=device.type,
        device_name=_device_name(device),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        float32_matmul_precision=torch.get_float32_matmul_precision(),
        batch=args.batch,
        input_size=list(args.input_size),
        warmup=args.warmup,
        repeat=args.repeat,
        compile=args.compile,
        compare_compile=args.compare_compile,
        compare_fused=args.compare_fused,
        compare_onnx=args.compare_onnx,
        compare_openvino=args.compare_openvino,
        baseline=getattr(args, 'baseline', None),
        compare_timm=getattr(args, 'compare_timm', None),
        freezing=args.freezing,
        with_cp=args.with_cp,
        load_avg_1min=dict(before=load[0], after=load[1]),
        gemm=gemm,
        workloads=results,
        warnings=warnings)
    if len(results) == 2:
        a, b = (r['latency_ms']['median'] for r in results)
        per_a, per_b = (
            r['latency_ms']['median'] / r['gmacs'] for r in results)
        report['compare'] = dict(
            latency_ratio_b_over_a=b / a,
            ms_per_gmac=[per_a, per_b],
            ms_per_gmac_ratio_b_over_a=per_b / per_a)
    return report


def print_report(report: Dict[str, Any]) -> None:
    """The report as a table, one column per workload."""
    works = report['workloads']
    h, w = report['input_size']
    rows: List[Tuple[str, List[str]]] = [('', [
        f'{chr(65 + i)}: {r["name"]}' if len(works) > 1 else r['name']
        for i, r in enumerate(works)
    ])]

    def row(label: str, fn: Callable[[dict], str]) -> None:
        rows.append((label, [fn(r) for r in works]))

    row('median latency [ms]', lambda r: f'{r["latency_ms"]["median"]:.1f}')
    row('min / max [ms]',
        lambda r: '{min:.1f} / {max:.1f}'.format(**r['latency_ms']))
    row('IQR / std [ms]',
        lambda r: '{iqr:.1f} / {std:.1f}'.format(**r['latency_ms']))
    row('first iteration [ms]', lambda r: f'{r["first_iter_ms"]:.0f}')
    row('images/s', lambda r: f'{r["images_per_s"]:.3g}')
    row('peak memory [MB]', lambda r: f'{r["memory"]["peak_mb"]:.0f}')
    row('  over pre-run baseline [MB]',
        lambda r: f'{r["memory"]["peak_delta_mb"]:.0f}')
    if 'live' in works[0]['memory']:
        row('live peak over pre-run baseline [MB]',
            lambda r: f'{r["memory"]["live"]["peak_delta_mb"]:.0f}')
        row('  over the step\'s start [MB]',
            lambda r: f'{r["memory"]["live"]["step_rise_mb"]:.0f}')
    row('forward GMACs (OpenMMLab "GFLOPs")', lambda r: f'{r["gmacs"]:.2f}')
    row('achieved GFLOP/s (2 per MAC)',
        lambda r: f'{r["achieved_gflops_per_s"]:.1f}')
    for dtype in report['gemm']:
        row(f'fraction of {dtype} GEMM rate',
            lambda r, d=dtype: f'{r[f"gemm_{d}_fraction"]:.3f}')
    if 'detections_per_image' in works[0]:
        row('detections/image (last run)',
            lambda r: f'{r["detections_per_image"]:.0f}')

    width = max(len(label) for label, _ in rows)
    cols = [max(len(v[i]) for _, v in rows) for i in range(len(works))]
    compile_ = 'B' if report['compare_compile'] else report['compile']
    if report['freezing']:
        compile_ = f'{compile_} (freezing)'
    print(f'\n{report["task"]} {report["dtype"]}, batch {report["batch"]} x '
          f'3x{h}x{w}, {report["device_name"]}, {report["threads"]} threads, '
          f'torch {report["torch"]}, compile={compile_}, '
          f'with_cp={report["with_cp"]}')
    print('1-min load average: {before:.2f} before, {after:.2f} after'.format(
        **report['load_avg_1min']))
    for dtype, g in report['gemm'].items():
        print(f'{dtype} GEMM {g["size"]}^3: {g["gflops_per_s"]:.1f} GFLOP/s '
              f'median (before {g["median_before"]:.1f}, after '
              f'{g["median_after"]:.1f})')
    for label, values in rows:
        print(f'{label:<{width}} | ' +
              ' | '.join(f'{v:>{c}}' for v, c in zip(values, cols)))
    if 'compare' in report:
        c = report['compare']
        print(f'B/A median latency {c["latency_ratio_b_over_a"]:.3f}; ms per '
              f'GMAC A {c["ms_per_gmac"][0]:.2f}, B {c["ms_per_gmac"][1]:.2f}'
              f', B/A {c["ms_per_gmac_ratio_b_over_a"]:.3f}')
    print(f'memory: {works[0]["memory"]["kind"]}; baseline = after building, '
          'before the first step')
    if 'live' in works[0]['memory']:
        print('live: peak of glibc malloc in-use bytes, read after every op '
              'of one extra step')
    if report['task'] == 'train':
        print('train: achieved rate assumes a step = 3x the forward MACs '
              '(backward 2x); --with-cp recomputation is not counted')
    for i, r in enumerate(works):
        tag = f'{chr(65 + i)}: ' if len(works) > 1 else ''
        for note in r['notes']:
            print(f'{tag}{note}')
        print(f'{tag}not counted (op: calls): ' +
              ', '.join(f'{op.removeprefix("aten::")}: {n}'
                        for op, n in sorted(r['uncounted_ops'].items())))
    for warning in report['warnings']:
        print(f'WARNING: {warning}')
