"""The GEMM reference: the matmul rate a run's achieved rate is compared
with."""
from functools import partial
from typing import Dict, List

import torch

from .timing import timed

# --dtype: the autocast dtype, and the name of its GEMM reference
DTYPES = dict(fp32=torch.float32, bf16=torch.bfloat16, fp16=torch.float16)


def measure_gemm(size: int,
                 dtype: torch.dtype,
                 device: torch.device,
                 repeat: int = 5) -> List[float]:
    """GFLOP/s (2 per MAC) of ``repeat`` square ``size`` matmuls."""
    a, b = (
        torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty_like(a)
    torch.mm(a, b, out=out)  # warm-up
    return [
        2 * size**3 / timed(partial(torch.mm, a, b, out=out), device) / 1e9
        for _ in range(repeat)
    ]


def gemm_references(dtype: str,
                    device: torch.device) -> Dict[str, torch.dtype]:
    """The GEMM rates a run is compared with: fp32's and its own dtype's,
    and on CUDA always bf16's (a GPU's matrix rate, whatever the run's
    dtype)."""
    names = ['fp32', dtype] + (['bf16'] if device.type == 'cuda' else [])
    return {name: DTYPES[name] for name in dict.fromkeys(names)}
