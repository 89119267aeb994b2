"""LayerNorm then MLP, keeping 5 instead of 10 values per channel for backward.

Autograd would keep the norm's input and output, the first linear's output
and the GELU's output (C + C + 4C + 4C per token). Here only the norm's
input and statistics and the first linear's output are kept; the norm's and
the GELU's outputs are recomputed in the backward, which costs two
element-wise passes.
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class _NormMlp(torch.autograd.Function):
    """``fc2(gelu(fc1(layer_norm(x))))`` with recomputation."""

    @staticmethod
    def forward(ctx, x: Tensor, eps: float, ln_w: Tensor, ln_b: Tensor,
                w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
        u, mean, rstd = torch.native_layer_norm(x, (x.shape[-1], ), ln_w,
                                                ln_b, eps)
        h = F.linear(u, w1, b1)
        ctx.save_for_backward(x, mean, rstd, h, ln_w, ln_b, w1, w2)
        return F.linear(F.gelu(h), w2, b2)

    @staticmethod
    def backward(ctx, dy: Tensor) -> Tuple[Tensor, ...]:
        x, mean, rstd, h, ln_w, ln_b, w1, w2 = ctx.saved_tensors
        c = x.shape[-1]
        dy2 = dy.reshape(-1, dy.shape[-1])
        h2 = h.reshape(-1, h.shape[-1])
        dw2 = dy2.t() @ F.gelu(h2)
        db2 = dy2.sum(0)
        dh = torch.ops.aten.gelu_backward(dy2 @ w2, h2)
        u = (x - mean) * rstd * ln_w + ln_b
        dw1 = dh.t() @ u.reshape(-1, c)
        db1 = dh.sum(0)
        du = (dh @ w1).view_as(x)
        dx, dln_w, dln_b = torch.ops.aten.native_layer_norm_backward(
            du, x, (c, ), mean, rstd, ln_w, ln_b, [True, True, True])
        return dx, None, dln_w, dln_b, dw1, db1, dw2, db2


def norm_mlp(x: Tensor, norm: nn.LayerNorm, mlp: nn.Module) -> Tensor:
    """``mlp(norm(x))``; in fp32 training without ``torch.compile``, with
    the norm's and GELU's outputs recomputed in the backward."""
    if (torch.is_grad_enabled() and x.dtype == torch.float32
            and not torch.is_autocast_enabled(x.device.type)
            and not torch.compiler.is_compiling()):
        return _NormMlp.apply(x, norm.eps, norm.weight, norm.bias,
                              mlp.fc1.weight, mlp.fc1.bias, mlp.fc2.weight,
                              mlp.fc2.bias)
    return mlp(norm(x))
