"""Counting a model's multiply-adds (the OpenMMLab "FLOPs" convention)."""
from math import prod
from typing import Any, Dict, List, Tuple

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """MACs of ``aten::scaled_dot_product_attention``: q @ k^T plus attn @ v.

    Scaling, mask and softmax are elementwise and, like all elementwise ops
    under the fvcore convention, not counted. mmengine has no handle for
    this op, so without this the attention would count as nothing.
    """
    q, k, v = (get_shape(x) for x in inputs[:3])
    return prod(q[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])


def count_macs(model: nn.Module,
               inputs: Tuple[Any, ...]) -> Tuple[int, Dict[str, int]]:
    """Forward MACs of ``model(*inputs)`` and the op types left uncounted."""
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    with torch.no_grad():
        return analyzer.total(), dict(analyzer.unsupported_ops())


class TensorMode(nn.Module):
    """``model(inputs, data_samples, mode='tensor')`` with one input, the
    form FlopAnalyzer traces (as mmdet's and mmseg's get_flops do)."""

    def __init__(self, model: nn.Module, data_samples: list) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs: torch.Tensor) -> Any:
        return self.model(inputs, self.data_samples, mode='tensor')
