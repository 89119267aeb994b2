"""Window attention with a learnable additive bias, fused in training too.

``F.scaled_dot_product_attention`` on a CPU falls back to its math kernel,
which keeps every attention matrix for backward, whenever the mask needs a
gradient (RegionViT's relative-position bias does). Here the forward runs
the fused kernel with the bias as a constant and keeps only its output and
log-sum-exp; the backward recomputes the attention probabilities a few
windows at a time, so the attention matrices never exist all at once.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

# Attention-matrix elements recomputed at a time in the backward.
_BACKWARD_CHUNK = 1 << 20


def _flash(q: Tensor, k: Tensor, v: Tensor,
           mask: Tensor) -> Tuple[Tensor, Tensor]:
    """The fused CPU kernel: output and per-query log-sum-exp."""
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, False, attn_mask=mask)
    return out, lse


class _BiasedAttention(torch.autograd.Function):
    """softmax(q k^T / sqrt(d) + mask) v over ``(M, h, L, d)`` windows; the
    ``(G, h, L, L)`` mask (``G`` 1 or dividing ``M``) repeats every ``G``
    windows, i.e. it is shared by the images of a batch."""

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
        step = max(1, _BACKWARD_CHUNK // (h * length * length))
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


def window_attention(q: Tensor, k: Tensor, v: Tensor,
                     mask: Optional[Tensor]) -> Tensor:
    """Attention of ``(M, h, L, d)`` windows with an additive ``(G, h, L, L)``
    mask that repeats every ``G`` windows (``G`` 1 or dividing ``M``)."""
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v)
    mask = mask.to(q.dtype)  # e.g. float32 bias, bfloat16 q under autocast
    if (mask.requires_grad and torch.is_grad_enabled()
            and q.device.type == 'cpu'
            and q.dtype in (torch.float32, torch.bfloat16)
            and torch.backends.cuda.flash_sdp_enabled()
            and not torch.compiler.is_compiling()):
        return _BiasedAttention.apply(q, k, v, mask)
    if mask.shape[0] not in (1, q.shape[0]):
        mask = mask.repeat(q.shape[0] // mask.shape[0], 1, 1, 1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
