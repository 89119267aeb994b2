"""Window attention with a learnable bias: fused in training, gradients equal
to the math kernel's."""
import pytest
import torch
import torch.nn.functional as F
from tolerances import check_close
from torch.nn.attention import SDPBackend, sdpa_kernel

from mmregionvit.models import RegionViT, cpu_kernels
from mmregionvit.models.ops import attention


def _inputs(images, windows, heads, length, dim, group):
    qkv = torch.randn(
        images * windows, length, 3, heads, dim, requires_grad=True)
    bias = torch.randn(1, heads, length, length, requires_grad=True)
    keep = torch.rand(group, 1, length, length) > 0.3
    keep[..., 0] = True  # every query keeps a key, as slot 0 does
    return qkv, bias, keep


def _run(qkv, bias, keep, fused):
    mask = bias.masked_fill(~keep, torch.finfo(torch.float32).min)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    if fused:
        out = attention(q, k, v, mask)
    else:
        if mask.shape[0] not in (1, q.shape[0]):
            mask = mask.repeat(q.shape[0] // mask.shape[0], 1, 1, 1)
        with sdpa_kernel(SDPBackend.MATH):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    qkv.grad = bias.grad = None
    (out * grad).sum().backward()
    return out, qkv.grad.clone(), bias.grad.clone()


@pytest.mark.parametrize('group', [1, 6])
def test_fused_matches_math_kernel(group, monkeypatch):
    # small backward chunks, so that chunking is exercised
    monkeypatch.setattr(cpu_kernels, 'ATTENTION_BACKWARD_CHUNK',
                        3 * 10 * 10 * 2)
    qkv, bias, keep = _inputs(2, 6, 3, 10, 8, group)
    with torch.profiler.profile() as prof:
        fused = _run(qkv, bias, keep, fused=True)
    ops = {e.key for e in prof.key_averages()}
    assert 'aten::_scaled_dot_product_flash_attention_for_cpu' in ops
    assert 'aten::_scaled_dot_product_attention_math' not in ops
    reference = _run(qkv, bias, keep, fused=False)
    for a, b in zip(fused, reference, strict=True):
        check_close('fast_path', a, b, 'attention')


def test_bfloat16_fused_close_to_float32(monkeypatch):
    """bfloat16 q, k, v with a float32 bias (autocast's case): fused both
    ways, and within bfloat16 rounding of float32 arithmetic."""
    monkeypatch.setattr(cpu_kernels, 'ATTENTION_BACKWARD_CHUNK',
                        3 * 10 * 10 * 2)
    qkv32, bias, keep = _inputs(2, 6, 3, 10, 8, 6)
    qkv = qkv32.detach().bfloat16().requires_grad_()
    with torch.profiler.profile() as prof:
        fused = _run(qkv, bias, keep, fused=True)
    ops = {e.key for e in prof.key_averages()}
    assert 'aten::_scaled_dot_product_attention_math' not in ops
    assert fused[0].dtype == fused[1].dtype == torch.bfloat16
    assert fused[2].dtype == torch.float32
    exact = _run(
        qkv.detach().float().requires_grad_(), bias, keep, fused=False)
    for a, b in zip(fused, exact, strict=True):
        torch.testing.assert_close(a.float(), b, rtol=2e-2, atol=2e-2)


def test_backbone_gradients_unchanged():
    """A padded input (masks on) trains to the same gradients as with the
    math kernel everywhere."""
    arch = dict(
        embed_dim=[16, 16, 32, 64, 128],
        num_heads=[1, 2, 4, 8],
        depth=[1, 1, 1, 1],
        kernel_sizes=[7] * 4)
    model = RegionViT(arch=arch, out_indices=(0, 1, 2, 3))
    x = torch.randn(2, 3, 100, 150)

    def grads():
        model.zero_grad()
        sum(o.square().mean() for o in model(x)).backward()
        return {
            n: p.grad.clone()
            for n, p in model.named_parameters() if p.grad is not None
        }

    fused = grads()
    with sdpa_kernel(SDPBackend.MATH):
        reference = grads()
    assert fused.keys() == reference.keys()
    assert any('rel_pos' in n for n in fused)
    for name in fused:
        check_close('fast_path_grad', fused[name], reference[name], name)
