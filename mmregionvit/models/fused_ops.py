"""The backbone's fused ops: a one-pass linear for inference, and
LayerNorm-led ops that keep only the norm's input for backward in training.

In training, autograd keeps every intermediate an op needs: a LayerNorm's
input *and* output, a linear layer's input, a GELU's input and output. For
a norm followed by linear layers (or a GELU and a convolution), the norm's
output and the GELU's output are cheap to recompute from the norm's input
and statistics, so these functions keep only those (and, for the MLP, the
first linear's output) and recompute the rest in the backward with
element-wise passes. Values and gradients equal the plain ops', under CPU
bfloat16 autocast too (the linear ones: the same casts as autocast makes);
the plain ops serve other autocast and ``torch.compile``.
"""
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

_layer_norm_backward = torch.ops.aten.native_layer_norm_backward
# oneDNN's linear with the bias (and GELU) fused into the GEMM: the eager
# path otherwise writes each output twice (bias broadcast, then GEMM) and
# makes a third pass for GELU. It has no autograd formula, so it serves
# fp32 CPU inference only; torch.compile does its own fusion, and tracers
# (FLOP counting) see the plain ops.
_FUSED_LINEAR = getattr(torch.ops.mkldnn, '_linear_pointwise', None) \
    if torch.backends.mkldnn.is_available() else None


def linear(x: Tensor, layer: nn.Linear, gelu: bool = False) -> Tensor:
    """``layer(x)``, followed by exact GELU if ``gelu``."""
    if (_FUSED_LINEAR is not None and x.device.type == 'cpu'
            and x.dtype == torch.float32 and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled('cpu')
            and not torch.compiler.is_compiling()
            and not torch.jit.is_tracing()):
        out = _FUSED_LINEAR(
            x.reshape(-1, x.shape[-1]), layer.weight, layer.bias,
            'gelu' if gelu else 'none', [], 'none' if gelu else '')
        return out.view(*x.shape[:-1], -1)
    x = F.linear(x, layer.weight, layer.bias)
    return F.gelu(x) if gelu else x


def _recomputes(x: Tensor, cpu_bf16_autocast: bool = False) -> bool:
    """Whether to take the recomputing path: fp32 training in eager mode,
    or, if ``cpu_bf16_autocast``, also training under CPU bf16 autocast."""
    if not torch.is_grad_enabled() or torch.compiler.is_compiling() \
            or torch.jit.is_tracing():
        return False
    if not torch.is_autocast_enabled(x.device.type):
        return x.dtype == torch.float32
    return (cpu_bf16_autocast and x.device.type == 'cpu'
            and torch.get_autocast_dtype('cpu') == torch.bfloat16
            and x.dtype in (torch.float32, torch.bfloat16))


def _norm(x: Tensor, mean: Tensor, rstd: Tensor, weight: Tensor,
          bias: Tensor) -> Tensor:
    """The LayerNorm output again (in ``x``'s dtype, as the forward gave
    it), from its saved statistics."""
    return ((x - mean) * rstd * weight + bias).to(x.dtype)


def _linear_grads(dy: Tensor, inp: Tensor,
                  w: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Gradients of ``linear(inp, w, b)`` for 2-D ``dy`` and ``inp``: input,
    weight, bias. The matmuls run in ``dy``'s dtype, i.e. the forward's
    (autocast's) compute dtype; parameter gradients in the parameters'."""
    return (dy @ w.to(dy.dtype), (dy.t() @ inp.to(dy.dtype)).to(w.dtype),
            dy.sum(0).to(w.dtype))


class _NormLinear(torch.autograd.Function):
    """``linear(layer_norm(x))``, keeping ``x`` and the statistics."""

    @staticmethod
    def forward(ctx, x: Tensor, eps: float, ln_w: Tensor, ln_b: Tensor,
                w: Tensor, b: Tensor) -> Tensor:
        u, mean, rstd = torch.native_layer_norm(x, (x.shape[-1], ), ln_w, ln_b,
                                                eps)
        ctx.save_for_backward(x, mean, rstd, ln_w, ln_b, w)
        return F.linear(u, w, b)

    @staticmethod
    def backward(ctx, dy: Tensor) -> Tuple[Tensor, ...]:
        x, mean, rstd, ln_w, ln_b, w = ctx.saved_tensors
        c = x.shape[-1]
        u = _norm(x, mean, rstd, ln_w, ln_b).reshape(-1, c)
        du, dw, db = _linear_grads(dy.reshape(-1, dy.shape[-1]), u, w)
        dx, dln_w, dln_b = _layer_norm_backward(
            du.to(x.dtype).view_as(x), x, (c, ), mean, rstd, ln_w, ln_b,
            [True] * 3)
        return dx, None, dln_w, dln_b, dw, db


# Rows per chunk of the MLP's training passes on a CPU: its 4x-wide
# intermediates then stay small (cache-sized, and below malloc's mmap
# threshold, so they are not page-faulted in afresh each time). Other
# devices take all rows at once.
_MLP_CHUNK_ROWS = 2048


def _chunk_rows(x: Tensor) -> int:
    return _MLP_CHUNK_ROWS if x.device.type == 'cpu' else max(1, x.shape[0])


def _compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype linear layers compute in for ``x``: autocast's, if on."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


class _NormMlp(torch.autograd.Function):
    """``fc2(gelu(fc1(layer_norm(x))))``, keeping ``x``, the statistics and
    ``fc1``'s output (5 instead of 10 values per channel). Both passes run
    in chunks of rows, so only the kept tensors and the result are large."""

    @staticmethod
    def forward(ctx, x: Tensor, eps: float, ln_w: Tensor, ln_b: Tensor,
                w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
        c = x.shape[-1]
        x2 = x.reshape(-1, c)
        rows, dtype = x2.shape[0], _compute_dtype(x)
        mean = x2.new_empty(rows, 1, dtype=torch.float32)
        rstd = torch.empty_like(mean)
        h = x2.new_empty(rows, w1.shape[0], dtype=dtype)
        out = x2.new_empty(rows, w2.shape[0], dtype=dtype)
        # autocast's casts, made here: out= ops are not autocast
        w1c, b1c, w2c, b2c = (t.to(dtype) for t in (w1, b1, w2, b2))
        step = _chunk_rows(x2)
        for i in range(0, rows, step):
            r = slice(i, i + step)
            u, mean[r], rstd[r] = torch.native_layer_norm(
                x2[r], (c, ), ln_w, ln_b, eps)
            torch.addmm(b1c, u.to(dtype), w1c.t(), out=h[r])
            torch.addmm(b2c, F.gelu(h[r]), w2c.t(), out=out[r])
        ctx.save_for_backward(x, mean, rstd, h, ln_w, ln_b, w1, w2)
        return out.view(*x.shape[:-1], -1)

    @staticmethod
    def backward(ctx, dy: Tensor) -> Tuple[Tensor, ...]:
        x, mean, rstd, h, ln_w, ln_b, w1, w2 = ctx.saved_tensors
        c = x.shape[-1]
        x2, dy2 = x.reshape(-1, c), dy.reshape(-1, dy.shape[-1])
        dx = torch.empty_like(x2)
        # parameter gradients, summed over the chunks
        grads = [
            torch.zeros_like(ln_w),
            torch.zeros_like(ln_b),
            torch.zeros_like(w1),
            w1.new_zeros(w1.shape[0]),
            torch.zeros_like(w2),
            w2.new_zeros(w2.shape[0])
        ]
        step = _chunk_rows(x2)
        for i in range(0, x2.shape[0], step):
            r = slice(i, i + step)
            dg, dw2, db2 = _linear_grads(dy2[r], F.gelu(h[r]), w2)
            dh = torch.ops.aten.gelu_backward(dg, h[r])
            u = _norm(x2[r], mean[r], rstd[r], ln_w, ln_b)
            du, dw1, db1 = _linear_grads(dh, u, w1)
            dx[r], dln_w, dln_b = _layer_norm_backward(
                du.to(x.dtype), x2[r], (c, ), mean[r], rstd[r], ln_w, ln_b,
                [True] * 3)
            for total, part in zip(grads, (dln_w, dln_b, dw1, db1, dw2, db2)):
                total += part
        return (dx.view_as(x), None, *grads)


class _NormGeluConv(torch.autograd.Function):
    """``conv2d(gelu(layer_norm over channels(x)))`` of an NCHW map, keeping
    the channels-last input and the statistics (1 instead of 3 maps)."""

    @staticmethod
    def forward(ctx, x: Tensor, eps: float, ln_w: Tensor, ln_b: Tensor,
                w: Tensor, b: Tensor, stride: List[int], padding: List[int],
                groups: int) -> Tensor:
        xl = x.permute(0, 2, 3, 1).contiguous()
        u, mean, rstd = torch.native_layer_norm(xl, (xl.shape[-1], ), ln_w,
                                                ln_b, eps)
        ctx.conv = (stride, padding, groups)
        ctx.save_for_backward(xl, mean, rstd, ln_w, ln_b, w)
        return F.conv2d(
            F.gelu(u).permute(0, 3, 1, 2), w, b, stride, padding, 1, groups)

    @staticmethod
    def backward(ctx, dy: Tensor) -> Tuple[Tensor, ...]:
        xl, mean, rstd, ln_w, ln_b, w = ctx.saved_tensors
        stride, padding, groups = ctx.conv
        u = _norm(xl, mean, rstd, ln_w, ln_b)
        dg, dw, db = torch.ops.aten.convolution_backward(
            dy,
            F.gelu(u).permute(0, 3, 1, 2), w, [w.shape[0]], stride, padding,
            [1, 1], False, [0, 0], groups, [True] * 3)
        du = torch.ops.aten.gelu_backward(dg.permute(0, 2, 3, 1), u)
        dxl, dln_w, dln_b = _layer_norm_backward(du.contiguous(), xl,
                                                 (xl.shape[-1], ), mean, rstd,
                                                 ln_w, ln_b, [True] * 3)
        return (dxl.permute(0, 3, 1,
                            2), None, dln_w, dln_b, dw, db, None, None, None)


def norm_linear(x: Tensor, norm: nn.LayerNorm, layer: nn.Linear) -> Tensor:
    """``layer(norm(x))``."""
    if _recomputes(x, cpu_bf16_autocast=True):
        return _NormLinear.apply(x, norm.eps, norm.weight, norm.bias,
                                 layer.weight, layer.bias)
    return linear(norm(x), layer)


def norm_mlp(x: Tensor, norm: nn.LayerNorm, mlp: nn.Module) -> Tensor:
    """``mlp(norm(x))`` for an ``fc1``, GELU, ``fc2`` MLP."""
    if _recomputes(x, cpu_bf16_autocast=True):
        return _NormMlp.apply(x, norm.eps, norm.weight, norm.bias,
                              mlp.fc1.weight, mlp.fc1.bias, mlp.fc2.weight,
                              mlp.fc2.bias)
    return mlp(norm(x))


def norm_gelu_conv(x: Tensor, norm: nn.LayerNorm, conv: nn.Conv2d) -> Tensor:
    """``conv(gelu(norm(x)))``, ``norm`` over the channels of NCHW ``x``;
    ``conv`` with a bias, numeric padding and no dilation."""
    if conv.bias is None or conv.dilation != (1, 1) or isinstance(
            conv.padding, str):
        raise ValueError('norm_gelu_conv takes a convolution with a bias, '
                         'numeric padding and no dilation.')
    if _recomputes(x):
        return _NormGeluConv.apply(x, norm.eps, norm.weight, norm.bias,
                                   conv.weight, conv.bias, list(conv.stride),
                                   list(conv.padding), conv.groups)
    return conv(F.gelu(norm(x)))
