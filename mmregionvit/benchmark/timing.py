"""Timing steps: the workload, the alternating timing loop, latency
statistics."""
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List

import torch

from .memory import MB, LiveMemory, PeakMemory, glibc_in_use


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes, device work included."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


@dataclass
class Workload:
    """One thing to time: ``step()`` runs one inference or training step."""
    name: str
    step: Callable[[], None]
    macs: int
    uncounted_ops: Dict[str, int]
    notes: List[str] = field(default_factory=list)
    extra: Dict[str, Any] = field(default_factory=dict)


def latency_stats(seconds: List[float]) -> Dict[str, float]:
    """Median and spread in milliseconds."""
    ms = sorted(t * 1e3 for t in seconds)
    q1, _, q3 = (
        statistics.quantiles(ms, n=4, method='inclusive') if len(ms) > 1 else
        (ms[0], ms[0], ms[0]))
    return dict(
        median=statistics.median(ms),
        min=ms[0],
        max=ms[-1],
        q1=q1,
        q3=q3,
        iqr=q3 - q1,
        mean=statistics.fmean(ms),
        std=statistics.stdev(ms) if len(ms) > 1 else 0.0)


def time_workloads(workloads: List[Workload], warmup: int, repeat: int,
                   device: torch.device, live: bool) -> List[Dict[str, Any]]:
    """Warm each workload up, then time them alternating per repeat; with
    ``live``, one more step each under :class:`LiveMemory`."""
    memory = PeakMemory(device)
    in_use = glibc_in_use() if live else None
    try:
        baseline = memory.current()
        live_baseline = in_use() if in_use else 0
        first = []
        for work in workloads:
            first.append(timed(work.step, device))
            for _ in range(warmup - 1):
                work.step()
        times: List[List[float]] = [[] for _ in workloads]
        peaks = [0] * len(workloads)
        for _ in range(repeat):
            for i, work in enumerate(workloads):
                memory.begin()
                times[i].append(timed(work.step, device))
                peaks[i] = max(peaks[i], memory.end())
        lives = []
        if in_use:
            for work in workloads:
                start = in_use()
                with LiveMemory(in_use) as tracker:
                    work.step()
                lives.append(
                    dict(
                        peak_delta_mb=(tracker.peak - live_baseline) / MB,
                        step_rise_mb=(tracker.peak - start) / MB))
    finally:
        memory.close()
    results = [
        dict(
            first_iter_ms=f * 1e3,
            latency_ms=latency_stats(t),
            samples_ms=[x * 1e3 for x in t],
            memory=dict(
                kind=memory.kind,
                baseline_mb=baseline / MB,
                peak_mb=p / MB,
                peak_delta_mb=(p - baseline) / MB))
        for f, t, p in zip(first, times, peaks)
    ]
    for result, live_memory in zip(results, lives):
        result['memory']['live'] = live_memory
    return results
