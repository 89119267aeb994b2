"""The CPU kernels behind the backbone's fast paths (``ops.py`` decides
when they run; nothing here decides).

- ``onednn_linear``: oneDNN's linear with the bias (and GELU) fused into the
  GEMM, for fp32 and bf16 inference; eager PyTorch writes each output twice
  (bias broadcast, then GEMM) and makes a third pass for GELU.
  ``bf16_copy`` keeps the bf16 weights it takes under autocast.
- ``NormLinear``, ``NormMlp``, ``NormGeluConv``: LayerNorm-led ops for
  training that keep only the norm's input (and, for the MLP, the first
  linear's output) for backward and recompute the norm and GELU outputs
  there with element-wise passes. Autograd would keep a LayerNorm's input
  *and* output, each linear layer's input, a GELU's input and output.
  Values and gradients equal the plain ops', under CPU bfloat16 autocast
  too (the linear ones make autocast's casts themselves).
- ``BiasedAttention``: attention with a learnable additive bias whose
  forward runs SDPA's fused CPU kernel and whose backward recomputes the
  probabilities a few windows at a time. ``F.scaled_dot_product_attention``
  on a CPU falls back to its math kernel, which keeps every attention
  matrix for backward, whenever the mask needs a gradient (RegionViT's
  relative-position bias does).
- ``nchw_copy``: the stage outputs' contiguous NCHW copy of channels-last
  memory.
"""
import weakref
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

_layer_norm_backward = torch.ops.aten.native_layer_norm_backward
# None where torch was built without oneDNN
_ONEDNN_LINEAR = getattr(torch.ops.mkldnn, '_linear_pointwise', None) \
    if torch.backends.mkldnn.is_available() else None
# Whether oneDNN has bf16 kernels on this CPU (AVX-512 BF16 or AMX)
ONEDNN_BF16 = (
    _ONEDNN_LINEAR is not None
    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
# bf16 copies of weights for inference: id -> (weak reference to the
# tensor, its version when copied, the copy); an entry goes with its tensor
_BF16_COPIES: Dict[int, Tuple[weakref.ref, int, Tensor]] = {}
# Rows per chunk of the MLP's training passes: its 4x-wide intermediates
# then stay small (cache-sized, and below malloc's mmap threshold, so they
# are not page-faulted in afresh each time).
MLP_CHUNK_ROWS = 2048
# MLPs at most this wide recompute their hidden layer in the backward
# instead of keeping it: it is the largest tensor a block keeps (4 values
# per channel and token), and for narrow layers the GEMM that remakes it is
# cheap (4C multiply-adds per value kept). In RegionViT that is the first
# two stages, which hold most of the tokens and few of the FLOPs.
MLP_RECOMPUTE_MAX_WIDTH = 256
# Attention-matrix elements recomputed at a time in the backward.
ATTENTION_BACKWARD_CHUNK = 1 << 20


def onednn_linear(x: Tensor, weight: Tensor, bias: Tensor,
                  gelu: bool) -> Tensor:
    """``F.linear(x, weight, bias)``, then exact GELU if ``gelu``, in one
    oneDNN call (no autograd formula: inference only)."""
    out = _ONEDNN_LINEAR(
        x.reshape(-1, x.shape[-1]), weight, bias, 'gelu' if gelu else 'none',
        [], 'none' if gelu else '')
    return out.view(*x.shape[:-1], -1)


def bf16_copy(t: Tensor) -> Tensor:
    """``t`` in bfloat16, cast once per version of ``t``: an in-place
    change (an optimizer step, loading a checkpoint) makes a new copy."""
    key = id(t)
    kept = _BF16_COPIES.get(key)
    if kept is None or kept[0]() is not t or kept[1] != t._version:
        ref = weakref.ref(t, lambda _: _BF16_COPIES.pop(key, None))
        kept = (ref, t._version, t.detach().to(torch.bfloat16))
        _BF16_COPIES[key] = kept
    return kept[2]


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


class NormLinear(torch.autograd.Function):
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


def _compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype linear layers compute in for ``x``: autocast's, if on."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


class NormMlp(torch.autograd.Function):
    """``fc2(gelu(fc1(layer_norm(x))))``, keeping ``x``, the statistics and
    ``fc1``'s output (5 instead of 10 values per channel), or for MLPs at
    most ``MLP_RECOMPUTE_MAX_WIDTH`` wide only ``x`` and the statistics
    (``fc1``'s output is made again in the backward). Both passes run in
    chunks of rows, so only the kept tensors and the result are large."""

    @staticmethod
    def forward(ctx, x: Tensor, eps: float, ln_w: Tensor, ln_b: Tensor,
                w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
        c = x.shape[-1]
        x2 = x.reshape(-1, c)
        rows, dtype = x2.shape[0], _compute_dtype(x)
        mean = x2.new_empty(rows, 1, dtype=torch.float32)
        rstd = torch.empty_like(mean)
        recompute = c <= MLP_RECOMPUTE_MAX_WIDTH
        # fc1's output: all of it, or one chunk at a time
        h = x2.new_empty(
            min(rows, MLP_CHUNK_ROWS) if recompute else rows,
            w1.shape[0],
            dtype=dtype)
        out = x2.new_empty(rows, w2.shape[0], dtype=dtype)
        # autocast's casts, made here: out= ops are not autocast
        w1c, b1c, w2c, b2c = (t.to(dtype) for t in (w1, b1, w2, b2))
        step = MLP_CHUNK_ROWS
        for i in range(0, rows, step):
            r = slice(i, i + step)
            hr = h[:min(step, rows - i)] if recompute else h[r]
            u, mean[r], rstd[r] = torch.native_layer_norm(
                x2[r], (c, ), ln_w, ln_b, eps)
            torch.addmm(b1c, u.to(dtype), w1c.t(), out=hr)
            torch.addmm(b2c, F.gelu(hr), w2c.t(), out=out[r])
        ctx.save_for_backward(x, mean, rstd, None if recompute else h, ln_w,
                              ln_b, w1, b1, w2)
        return out.view(*x.shape[:-1], -1)

    @staticmethod
    def backward(ctx, dy: Tensor) -> Tuple[Tensor, ...]:
        x, mean, rstd, h, ln_w, ln_b, w1, b1, w2 = ctx.saved_tensors
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
        # fc1 as the forward computed it (dy's dtype is its compute dtype)
        w1c, b1c = w1.to(dy.dtype).t(), b1.to(dy.dtype)
        step = MLP_CHUNK_ROWS
        for i in range(0, x2.shape[0], step):
            r = slice(i, i + step)
            u = _norm(x2[r], mean[r], rstd[r], ln_w, ln_b)
            hr = h[r] if h is not None else torch.addmm(
                b1c, u.to(dy.dtype), w1c)
            dg, dw2, db2 = _linear_grads(dy2[r], F.gelu(hr), w2)
            dh = torch.ops.aten.gelu_backward(dg, hr)
            du, dw1, db1 = _linear_grads(dh, u, w1)
            dx[r], dln_w, dln_b = _layer_norm_backward(
                du.to(x.dtype), x2[r], (c, ), mean[r], rstd[r], ln_w, ln_b,
                [True] * 3)
            for total, part in zip(grads, (dln_w, dln_b, dw1, db1, dw2, db2)):
                total += part
        return (dx.view_as(x), None, *grads)


class NormGeluConv(torch.autograd.Function):
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


def _flash(q: Tensor, k: Tensor, v: Tensor,
           mask: Tensor) -> Tuple[Tensor, Tensor]:
    """SDPA's fused CPU kernel: output and per-query log-sum-exp."""
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, False, attn_mask=mask)
    return out, lse


class BiasedAttention(torch.autograd.Function):
    """softmax(q k^T / sqrt(d) + mask) v over ``(M, h, L, d)`` windows; the
    ``(G, h, L, L)`` mask (``G`` 1 or dividing ``M``) repeats every ``G``
    windows, i.e. it is shared by the images of a batch. The forward keeps
    only its output and log-sum-exp; the attention matrices never exist all
    at once, in the backward neither."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        m, group = q.shape[0], mask.shape[0]
        if group == 1 or group == m:
            out, lse = _flash(q, k, v, mask)
        else:
            parts = [
                _flash(q[i:i + group], k[i:i + group], v[i:i + group], mask)
                for i in range(0, m, group)
            ]
            out = torch.cat([o for o, _ in parts])
            lse = torch.cat([s for _, s in parts])
        ctx.save_for_backward(q, k, v, mask, out, lse)
        return out

    @staticmethod
    def backward(ctx, dout: Tensor) -> Tuple[Tensor, ...]:
        q, k, v, mask, out, lse = ctx.saved_tensors
        m, h, length, d = q.shape
        scale = d**-0.5
        shared = mask.shape[0] == 1  # one mask for every window
        group = m if shared else mask.shape[0]
        step = max(1, ATTENTION_BACKWARD_CHUNK // (h * length * length))
        dq, dk, dv = (
            torch.empty_like(q, memory_format=torch.contiguous_format)
            for _ in range(3))
        # float32 arithmetic chunk by chunk, also for bfloat16 inputs
        dmask = torch.zeros(mask.shape, device=mask.device)
        for start in range(0, m, group):
            for i in range(start, start + group, step):
                j = min(i + step, start + group)
                mk = mask if shared else mask[i - start:j - start]
                qi, ki, vi, oi, doi = (
                    t[i:j].float() for t in (q, k, v, out, dout))
                p = torch.exp(
                    torch.matmul(qi, ki.transpose(-2, -1)) * scale +
                    mk.float() - lse[i:j, ..., None])
                dv[i:j] = torch.matmul(p.transpose(-2, -1), doi)
                delta = (doi * oi).sum(-1, keepdim=True)
                ds = p * (torch.matmul(doi, vi.transpose(-2, -1)) - delta)
                dq[i:j] = torch.matmul(ds, ki) * scale
                dk[i:j] = torch.matmul(ds.transpose(-2, -1), qi) * scale
                if shared:
                    dmask += ds.sum(0, keepdim=True)
                else:
                    dmask[i - start:j - start] += ds
        return dq, dk, dv, dmask.to(mask.dtype)


@torch.library.custom_op('mmregionvit::nchw_copy', mutates_args=())
def nchw_copy(x: Tensor) -> Tensor:
    """A contiguous copy of an NCHW view of channels-last memory, made by one
    2-D transpose per image: torch copies a transposed matrix block by
    block, several times faster than a permuted 4-D copy. An opaque op, so
    that torch.compile keeps it too (its own copy kernel is 3-5x slower)."""
    b, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
    out = x.new_empty(b, c, h * w)
    for i in range(b):
        out[i].copy_(rows[i].t())
    return out.view(b, c, h, w)


@nchw_copy.register_fake
def _(x: Tensor) -> Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


nchw_copy.register_autograd(lambda ctx, grad: grad)
