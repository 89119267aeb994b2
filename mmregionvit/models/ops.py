"""The backbone's fast paths, and every decision to take them.

The modules in ``regionvit.py`` are plain PyTorch and read like the paper:
that reference is what tracers, exporters and ``RegionViT(fused=False)``
run. With ``fused=True`` (the default) the modules hand the same
computations to the functions here, which pick, call by call, the fastest
way this process has (kernels in ``cpu_kernels.py``):

- CPU fp32 inference: oneDNN linears with bias and GELU fused, and each
  block's windows in cache-sized chunks written straight into the output;
- CPU training (fp32, or bf16 autocast): LayerNorm-led ops that keep less
  for backward, and attention that stays fused in the backward;
- any device: channels-last convolutions, padding masks built once per
  input size and window tensors written with one copy of the local tokens;
  other devices than the CPU get plain ops otherwise, with all windows at
  once and attention masks laid out for SDPA's memory-efficient kernel;
- ``torch.compile``: the chunked inference and the opaque output copy,
  plain ops otherwise (Inductor fuses those itself).

Each decision is made, and explained, once: in the function named for it.
"""
from functools import lru_cache
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from . import cpu_kernels
from .windows import WindowLayout
from .windows import window_keep as _build_window_keep

# Tokens per chunk when a CPU runs a block's windows chunk by chunk.
CHUNK_TOKENS = 4096
# Elements to which the rows of an attention mask are padded off the CPU.
MASK_ALIGN = 8


def enabled() -> bool:
    """Whether fast paths may run: never while tracing, scripting or
    exporting, so that those record the reference."""
    return not (torch.jit.is_tracing() or torch.jit.is_scripting()
                or torch.onnx.is_in_onnx_export()
                or torch.compiler.is_exporting())


def _cpu_training(x: Tensor, autocast_bf16: bool) -> bool:
    """Training in eager mode on a CPU, in fp32 or (if ``autocast_bf16``)
    under bf16 autocast: where the recomputing kernels apply. Compiled code
    gets plain ops, which Inductor fuses and recomputes itself."""
    if (x.device.type != 'cpu' or not torch.is_grad_enabled()
            or torch.compiler.is_compiling()):
        return False
    if not torch.is_autocast_enabled('cpu'):
        return x.dtype == torch.float32
    return (autocast_bf16 and torch.get_autocast_dtype('cpu') == torch.bfloat16
            and x.dtype in (torch.float32, torch.bfloat16))


def _onednn_inference(x: Tensor) -> Optional[torch.dtype]:
    """The dtype oneDNN's fused linear computes ``x`` in, or None where it
    does not serve: eager CPU inference, in fp32 or under bf16 autocast
    (where this CPU has oneDNN's bf16 kernels). It has no autograd formula
    and no autocast of its own."""
    if (cpu_kernels._ONEDNN_LINEAR is None or x.device.type != 'cpu'
            or torch.is_grad_enabled() or torch.compiler.is_compiling()):
        return None
    if not torch.is_autocast_enabled('cpu'):
        return torch.float32 if x.dtype == torch.float32 else None
    if (torch.get_autocast_dtype('cpu') == torch.bfloat16
            and x.dtype in (torch.float32, torch.bfloat16)
            and cpu_kernels.ONEDNN_BF16):
        return torch.bfloat16
    return None


def linear(x: Tensor, layer: nn.Linear, gelu: bool = False) -> Tensor:
    """``layer(x)``, followed by exact GELU if ``gelu``.

    Eager CPU inference runs oneDNN's linear with the bias and GELU fused;
    under bf16 autocast it computes as autocast would (bf16 operands, bf16
    result), from bf16 copies of the weights made once per weight version
    instead of once per call and forward.
    """
    dtype = _onednn_inference(x)
    if dtype == torch.float32:
        return cpu_kernels.onednn_linear(x, layer.weight, layer.bias, gelu)
    if dtype == torch.bfloat16:
        return cpu_kernels.onednn_linear(
            x.to(dtype), cpu_kernels.bf16_copy(layer.weight),
            cpu_kernels.bf16_copy(layer.bias), gelu)
    x = F.linear(x, layer.weight, layer.bias)
    return F.gelu(x) if gelu else x


def norm_linear(x: Tensor, norm: nn.LayerNorm, layer: nn.Linear) -> Tensor:
    """``layer(norm(x))``."""
    if _cpu_training(x, autocast_bf16=True):
        return cpu_kernels.NormLinear.apply(x, norm.eps, norm.weight,
                                            norm.bias, layer.weight,
                                            layer.bias)
    return linear(norm(x), layer)


def norm_mlp(x: Tensor, norm: nn.LayerNorm, mlp: nn.Module) -> Tensor:
    """``mlp(norm(x))`` for an ``fc1``, GELU, ``fc2`` MLP."""
    if _cpu_training(x, autocast_bf16=True):
        return cpu_kernels.NormMlp.apply(x, norm.eps, norm.weight, norm.bias,
                                         mlp.fc1.weight, mlp.fc1.bias,
                                         mlp.fc2.weight, mlp.fc2.bias)
    return linear(linear(norm(x), mlp.fc1, gelu=True), mlp.fc2)


def norm_gelu_conv(x: Tensor, norm: nn.LayerNorm, conv: nn.Conv2d) -> Tensor:
    """``conv(gelu(norm(x)))``, ``norm`` over the channels of NCHW ``x``;
    ``conv`` with a bias, numeric padding and no dilation. The recomputing
    kernel makes no autocast casts, so it serves fp32 only."""
    if conv.bias is None or conv.dilation != (1, 1) or isinstance(
            conv.padding, str):
        raise ValueError('norm_gelu_conv takes a convolution with a bias, '
                         'numeric padding and no dilation.')
    if _cpu_training(x, autocast_bf16=False):
        return cpu_kernels.NormGeluConv.apply(x, norm.eps, norm.weight,
                                              norm.bias, conv.weight,
                                              conv.bias, list(conv.stride),
                                              list(conv.padding), conv.groups)
    return conv(F.gelu(norm(x)))


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """Attention of ``(M, h, L, d)`` windows with an additive ``(G, h, L, L)``
    mask that repeats every ``G`` windows (``G`` 1 or dividing ``M``).

    When the mask needs a gradient, a CPU's SDPA falls back to its math
    kernel, which keeps every attention matrix; our kernel stays fused. It
    honours ``torch.nn.attention.sdpa_kernel``: SDPA's backend switches are
    process-wide, the CPU included despite their ``cuda`` names, and with
    the flash backend switched off (as for a materialising reference) plain
    SDPA runs. Other devices get SDPA with the mask laid out for its
    memory-efficient kernel (:func:`sdpa_mask`).
    """
    if q.device.type != 'cpu':
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=sdpa_mask(mask, q.shape[0], q.dtype))
    mask = mask.to(q.dtype)  # e.g. float32 bias, bfloat16 q under autocast
    if (mask.requires_grad and torch.is_grad_enabled()
            and q.dtype in (torch.float32, torch.bfloat16)
            and torch.backends.cuda.flash_sdp_enabled()
            and not torch.compiler.is_compiling()):
        return cpu_kernels.BiasedAttention.apply(q, k, v, mask)
    if mask.shape[0] not in (1, q.shape[0]):
        mask = mask.repeat(q.shape[0] // mask.shape[0], 1, 1, 1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def sdpa_mask(mask: Tensor, windows: int, dtype: torch.dtype) -> Tensor:
    """``mask`` ``(G, h, L, S)`` as the attention mask of ``windows`` windows
    in ``dtype``: tiled to ``windows`` unless ``G`` is 1, in rows padded to
    ``MASK_ALIGN`` elements, written by one copy.

    On CUDA the only fused SDPA kernel that takes a mask needing a gradient
    is the memory-efficient one, and it reads the mask in place only if
    every stride but the last is a multiple of 8 elements; otherwise SDPA
    copies it into padded rows itself, on every call (window lengths
    ``1 + ws * ws`` are odd). It also wants the mask in the query's dtype.
    """
    g, h, length, s = mask.shape
    n = 1 if g == 1 else windows
    padded = -(-s // MASK_ALIGN) * MASK_ALIGN
    out = mask.new_empty(n, h, length, padded, dtype=dtype)[..., :s]
    out.unflatten(0, (n // g, g)).copy_(mask)
    return out


def _attend(attn: nn.Module,
            x: Tensor,
            norm: nn.LayerNorm,
            mask: Optional[Tensor] = None) -> Tensor:
    """``attn(norm(x), mask)`` of an ``R2LAttention`` on ``(M, N, C)``."""
    m, n, c = x.shape
    h = attn.num_heads
    qkv = norm_linear(x, norm, attn.qkv).view(m, n, 3, h, c // h)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    if mask is None:
        x = F.scaled_dot_product_attention(q, k, v)
    else:
        x = attention(q, k, v, mask)
    return linear(x.transpose(1, 2).reshape(m, n, c), attn.proj)


def _local(block: nn.Module,
           x: Tensor,
           mask: Tensor,
           out: Optional[Tensor] = None) -> Tensor:
    """Local attention and MLP of an ``R2LBlock`` on windows ``(M, L, C)``,
    the result written into ``out`` if given."""
    x = x + block.drop_path(_attend(block.attn, x, block.local_norm, mask))
    mlp = norm_mlp(x, block.mlp_norm, block.mlp)
    return torch.add(x, block.drop_path(mlp), out=out)


def _window_chunk(x: Tensor) -> int:
    """Windows per chunk in inference: a CPU keeps each chunk's activations
    in cache; other devices take all windows at once (chunks would only add
    kernel launches)."""
    if x.device.type != 'cpu':
        return x.shape[0]
    return max(1, CHUNK_TOKENS // x.shape[1])


def r2l_block(block: nn.Module, x: Tensor,
              pad_keep: Optional[Tensor]) -> Tensor:
    """``block(x, pad_keep)`` of an ``R2LBlock``, the fast way."""
    b, nw, length, c = x.shape
    # a copy: a view kept for backward would keep all of x alive
    regional = x[:, :, 0].contiguous()
    regional = regional + block.drop_path(
        _attend(block.attn, regional, block.regional_norm))
    mask = block.local_mask(pad_keep, x.dtype)  # (1 or nW, h, L, L)
    if torch.is_grad_enabled():
        x = torch.cat([regional.unsqueeze(2), x[:, :, 1:]], dim=2)
        return _local(block, x.view(b * nw, length, c),
                      mask).view(b, nw, length, c)
    # Inference, eager or compiled: windows are independent from here on,
    # so they go through in chunks, each taking its regional tokens as it
    # is built and written straight into the output.
    x = x.view(b * nw, length, c)
    regional = regional.view(b * nw, 1, c)
    out = torch.empty_like(x)
    step = _window_chunk(x)
    if mask.shape[0] > 1 and step < b * nw:  # per-window masks, chunked
        mask = mask.expand(b, -1, -1, -1, -1).flatten(0, 1)
    for i in range(0, b * nw, step):
        chunk = torch.cat([regional[i:i + step], x[i:i + step, 1:]], 1)
        chunk_mask = mask if mask.shape[0] == 1 else mask[i:i + step]
        _local(block, chunk, chunk_mask, out=out[i:i + step])
    return out.view(b, nw, length, c)


def to_windows(layout: WindowLayout, regional: Tensor,
               local: Tensor) -> Tensor:
    """``layout.to_windows(regional, local)``, copying the local tokens once:
    straight into the window tensor."""
    windows = layout.local_windows(local)
    b, h_win, w_win, ws, _, c = windows.shape
    out = windows.new_empty(b, h_win, w_win, 1 + ws * ws, c)
    out[:, :, :, 0] = regional.permute(0, 2, 3, 1)
    out[:, :, :, 1:].unflatten(3, (ws, ws)).copy_(windows)
    return out.flatten(1, 2)


def channels_last(x: Tensor) -> Tensor:
    """The image in channels-last memory: the stem's convolutions then
    output channels-last maps, so the norms between them and the window
    layout need no transposing copies."""
    return x.contiguous(memory_format=torch.channels_last)


def contiguous_nchw(x: Tensor) -> Tensor:
    """``x.contiguous()``: on a CPU, a view of channels-last memory is copied
    by one 2-D transpose per image (several times faster)."""
    if x.is_contiguous() or x.device.type != 'cpu':
        return x.contiguous()
    return cpu_kernels.nchw_copy(x)


_cached_window_keep = lru_cache(maxsize=32)(_build_window_keep)


def window_keep(h_win: int, w_win: int, ws: int, pad_b: int, pad_r: int,
                device: torch.device) -> Tensor:
    """``windows.window_keep``, built once per input size in eager mode;
    torch.compile traces the builder instead (it warns on caches)."""
    if torch.compiler.is_compiling():
        return _build_window_keep(h_win, w_win, ws, pad_b, pad_r, device)
    return _cached_window_keep(h_win, w_win, ws, pad_b, pad_r, device)


def bf16_grouped_conv_fault(x: Tensor) -> bool:
    """Whether a strided grouped convolution of ``x`` would hit torch 2.14's
    CPU bfloat16 kernel fault: wrong (often huge) weight gradients for maps
    one pixel wide. Such maps are tiny, so they run in float32 instead."""
    return (x.device.type == 'cpu' and torch.is_autocast_enabled('cpu')
            and 1 in x.shape[-2:])
