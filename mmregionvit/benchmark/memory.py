"""Peak memory of timed steps: CUDA's allocator, a CPU process's RSS, and
glibc malloc's live bytes after every op."""
import ctypes
import os
import threading
from typing import Callable, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

MB = 2**20


def _rss() -> int:
    """Resident set size of this process in bytes (Linux ``/proc``)."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


class PeakMemory:
    """Peak memory of the steps bracketed by :meth:`begin` and :meth:`end`.

    CUDA: the caching allocator's peak of allocated tensor memory. CPU: the
    process RSS sampled every ``interval`` seconds by a background thread;
    memory the C allocator keeps after a free counts, spikes shorter than the
    interval can be missed.
    """

    def __init__(self, device: torch.device, interval: float = 0.005) -> None:
        self.device = device
        self.kind = ('cuda max_memory_allocated' if device.type == 'cuda' else
                     f'process RSS sampled every {interval * 1e3:g} ms')
        self._peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if device.type == 'cpu':
            self._thread = threading.Thread(
                target=self._sample, args=(interval, ), daemon=True)
            self._thread.start()

    def _sample(self, interval: float) -> None:
        while not self._stop.wait(interval):
            rss = _rss()
            with self._lock:
                self._peak = max(self._peak, rss)

    def current(self) -> int:
        if self.device.type == 'cuda':
            return torch.cuda.memory_allocated(self.device)
        return _rss()

    def begin(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        with self._lock:
            self._peak = _rss()

    def end(self) -> int:
        if self.device.type == 'cuda':
            return torch.cuda.max_memory_allocated(self.device)
        rss = _rss()
        with self._lock:
            return max(self._peak, rss)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd',
                     'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')
    ]


def glibc_in_use() -> Optional[Callable[[], int]]:
    """Bytes glibc's malloc has handed out and not had back (all arenas,
    heap and mmapped chunks), or None without glibc >= 2.33."""
    try:
        mallinfo2 = ctypes.CDLL('libc.so.6').mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2

    def in_use() -> int:
        info = mallinfo2()
        return info.uordblks + info.hblkhd

    return in_use


class LiveMemory(TorchDispatchMode):
    """Peak of the memory the C allocator has handed out and not had back,
    read after every aten op: on a CPU the counterpart of CUDA's
    ``max_memory_allocated``, free of what the allocator keeps after a free
    (which RSS counts). Slow (a heap walk per op): for an extra, untimed
    step."""

    def __init__(self, in_use: Callable[[], int]) -> None:
        super().__init__()
        self.in_use = in_use
        self.peak = in_use()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.peak = max(self.peak, self.in_use())
        return out
