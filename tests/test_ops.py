"""The fast paths: the norm-led ops with recomputation give the same values
and gradients as autograd through the plain modules and keep less for
backward; the fused backbone trains to the reference path's gradients."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmregionvit.models import RegionViT, cpu_kernels, ops
from mmregionvit.models.ops import norm_gelu_conv, norm_linear, norm_mlp
from mmregionvit.models.regionvit import LayerNorm2d, Mlp


def _norm(cls, c):
    norm = cls(c, eps=1e-6)
    nn.init.normal_(norm.weight, 1.0, 0.2)
    nn.init.normal_(norm.bias, 0.0, 0.2)
    return norm


def saved_bytes(fn):
    """Bytes of the distinct storages autograd keeps for backward."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = \
            t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


def _norm_linear():
    norm, layer = _norm(nn.LayerNorm, 16), nn.Linear(16, 48)
    return (lambda x: norm_linear(x, norm, layer), lambda x: layer(norm(x)),
            [*norm.parameters(), *layer.parameters()], (3, 5, 16))


def _norm_mlp():
    norm, mlp = _norm(nn.LayerNorm, 16), Mlp(16, 64)
    return (lambda x: norm_mlp(x, norm, mlp),
            lambda x: mlp.fc2(F.gelu(mlp.fc1(norm(x)))),
            [*norm.parameters(), *mlp.parameters()], (3, 5, 16))


def _norm_gelu_conv(groups=1, stride=2):
    norm = _norm(LayerNorm2d, 8)
    conv = nn.Conv2d(8, 16, 3, stride, 1, groups=groups)
    return (lambda x: norm_gelu_conv(x, norm, conv),
            lambda x: conv(F.gelu(norm(x))),
            [*norm.parameters(), *conv.parameters()], (2, 8, 9, 11))


CASES = dict(
    norm_linear=_norm_linear,
    norm_mlp=_norm_mlp,
    norm_gelu_conv=_norm_gelu_conv,
    norm_gelu_conv_grouped=lambda: _norm_gelu_conv(8, 1))


@pytest.mark.parametrize('case', sorted(CASES))
def test_matches_autograd(case):
    fused, plain, params, shape = CASES[case]()
    x = torch.randn(*shape, requires_grad=True)
    out = fused(x)
    dy = torch.randn_like(out)
    grads = torch.autograd.grad(out, [x, *params], dy)
    with torch.no_grad():  # the inference path
        torch.testing.assert_close(fused(x), out)
    reference = plain(x)
    torch.testing.assert_close(out, reference)
    for g, r in zip(
            grads, torch.autograd.grad(reference, [x, *params], dy),
            strict=True):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('x_dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('case', ['norm_linear', 'norm_mlp'])
def test_matches_autograd_under_bf16_autocast(case, x_dtype):
    """The same casts as autocast's plain path: bf16 linears, the norm in
    the input's dtype; float32 parameter gradients."""
    fused, plain, params, shape = CASES[case]()
    x = torch.randn(64, *shape[1:], dtype=x_dtype, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = fused(x)
        kept = saved_bytes(lambda: fused(x))
        reference = plain(x)
        plain_kept = saved_bytes(lambda: plain(x))
    assert out.dtype == reference.dtype == torch.bfloat16
    assert kept < plain_kept
    torch.testing.assert_close(out, reference)
    dy = torch.randn_like(out)
    grads = torch.autograd.grad(out, [x, *params], dy)
    expected = torch.autograd.grad(reference, [x, *params], dy)
    for g, r in zip(grads, expected, strict=True):
        assert g.dtype == r.dtype
        # the same casts, so float32 noise (bf16 input gradients: one
        # rounding)
        rtol = 1e-5 if g.dtype == torch.float32 else 2**-8
        torch.testing.assert_close(g, r, rtol=rtol, atol=1e-5)


@pytest.mark.parametrize('recompute', [False, True])
@pytest.mark.parametrize('bf16', [False, True])
def test_norm_mlp_in_uneven_chunks_matches_autograd(monkeypatch, bf16,
                                                    recompute):
    """Rows split 4, 4, 4, 3: per-chunk outputs and summed parameter
    gradients equal the plain ops' on all rows at once, with fc1's output
    kept or made again in the backward."""
    monkeypatch.setattr(cpu_kernels, 'MLP_CHUNK_ROWS', 4)
    monkeypatch.setattr(cpu_kernels, 'MLP_RECOMPUTE_MAX_WIDTH',
                        16 if recompute else 15)
    fused, plain, params, shape = CASES['norm_mlp']()
    x = torch.randn(*shape, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
        out, reference = fused(x), plain(x)
    dy = torch.randn_like(out)
    grads = torch.autograd.grad(out, [x, *params], dy)
    expected = torch.autograd.grad(reference, [x, *params], dy)
    tol = 2e-2 if bf16 else 1e-5
    torch.testing.assert_close(out, reference, rtol=tol, atol=tol)
    for g, r in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, r, rtol=tol, atol=tol)


@pytest.mark.parametrize('case', sorted(CASES))
def test_training_kernels_run_on_cpu_only(case):
    """The recomputing kernels are CPU kernels: other devices (the meta
    device standing in for a GPU) get the plain ops."""
    for device, expected in (('cpu', True), ('meta', False)):
        with torch.device(device):
            fused, _, _, shape = CASES[case]()
            x = torch.randn(*shape, requires_grad=True)
        name = type(fused(x).grad_fn).__name__
        assert name.startswith('Norm') == expected, (device, name)


@pytest.mark.parametrize(
    'case, recompute_width, kept, plain_kept',
    [
        ('norm_linear', 0, 1, 2),  # input | input, norm output
        # input, fc1 output | + norm and GELU outputs
        ('norm_mlp', 15, 5, 10),
        ('norm_mlp', 16, 1, 10),  # input, fc1 output made again
        ('norm_gelu_conv', 0, 1, 3),  # input | input, norm and GELU outputs
    ])
def test_keeps_less_for_backward(monkeypatch, case, recompute_width, kept,
                                 plain_kept):
    """What the kernels keep, in activations of the input's size; the MLP
    (16 wide) keeps fc1's output unless it is at most
    ``MLP_RECOMPUTE_MAX_WIDTH`` wide."""
    monkeypatch.setattr(cpu_kernels, 'MLP_RECOMPUTE_MAX_WIDTH',
                        recompute_width)
    fused, plain, params, shape = CASES[case]()
    x = torch.randn(64, *shape[1:], requires_grad=True)
    weights = sum(p.numel() * p.element_size() for p in params)
    activation = x.numel() * x.element_size()
    ours = saved_bytes(lambda: fused(x)) - weights
    theirs = saved_bytes(lambda: plain(x)) - weights
    # the norm's statistics add 2 values per token
    assert kept * activation <= ours < (kept + 0.5) * activation
    assert plain_kept * activation <= theirs < (plain_kept + 0.5) * activation


def test_conv_it_cannot_recompute_is_refused():
    with pytest.raises(ValueError, match='bias'):
        norm_gelu_conv(
            torch.randn(1, 8, 4, 4), LayerNorm2d(8),
            nn.Conv2d(8, 8, 3, padding=1, bias=False))


def test_fused_backbone_trains_like_the_reference():
    """The whole backbone (3conv stem, strided downsampling, padded windows,
    several images) trains to the reference path's gradients, and the fused
    path keeps less for backward."""
    arch = dict(
        embed_dim=[16, 16, 32, 64, 128],
        num_heads=[1, 2, 4, 8],
        depth=[1, 1, 1, 1],
        kernel_sizes=[7] * 4)
    model = RegionViT(arch=arch)
    model.init_weights()
    x = torch.randn(2, 3, 100, 150, requires_grad=True)

    def run(fused):
        model.fused = fused
        model.zero_grad()
        x.grad = None
        kept = saved_bytes(lambda: setattr(run, 'outs', model(x)))
        sum(o.square().mean() for o in run.outs).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        return kept, grads, x.grad.clone()

    kept, grads, dx = run(fused=True)
    plain_kept, reference, plain_dx = run(fused=False)
    assert kept < 0.8 * plain_kept
    torch.testing.assert_close(dx, plain_dx, rtol=1e-4, atol=1e-6)
    for name, g in grads.items():
        torch.testing.assert_close(
            g, reference[name], rtol=1e-4, atol=1e-5, msg=name)


def test_block_keeps_no_view_of_its_input():
    """The regional tokens are copied before their norm, so that backward
    does not keep the whole block input alive through a view."""
    from mmregionvit.models.regionvit import R2LBlock
    block = R2LBlock(16, 2, 7, 4.0, 0.0)
    x = torch.randn(2, 4, 50, 16, requires_grad=True)
    storages = set()

    def pack(t):
        storages.add(t.untyped_storage().data_ptr())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        block(x, None)
    assert storages and x.untyped_storage().data_ptr() not in storages


def test_backbone_bf16_autocast_gradients():
    """Under CPU bf16 autocast, the recomputing ops and the fused attention
    backward keep less than the reference path, and their gradients are as
    close to float32's as the reference path's."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    arch = dict(
        embed_dim=[16, 16, 32, 64, 128],
        num_heads=[1, 2, 4, 8],
        depth=[1, 1, 1, 1],
        kernel_sizes=[7] * 4)
    torch.manual_seed(0)
    model = RegionViT(arch=arch)
    x = torch.randn(2, 3, 100, 150)
    with torch.no_grad():  # a loss the output norms do not flatten
        weights = [torch.randn_like(o) for o in model(x)]

    def run(bf16=True):
        model.zero_grad()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            kept = saved_bytes(lambda: setattr(run, 'outs', model(x)))
        sum((o.float() * w).mean() for o, w in zip(run.outs, weights)) \
            .backward()
        return kept, torch.cat([p.grad.flatten() for p in model.parameters()])

    _, exact = run(bf16=False)
    kept, fused = run()
    model.fused = False
    with sdpa_kernel(SDPBackend.MATH):
        plain_kept, plain = run()
    assert kept < 0.8 * plain_kept
    plain_error = (plain - exact).norm() / exact.norm()
    assert 0 < plain_error < 0.1
    assert (fused - exact).norm() / exact.norm() <= 1.25 * plain_error


BF16_ONEDNN = pytest.mark.skipif(
    not cpu_kernels.ONEDNN_BF16, reason='no oneDNN bf16 kernels on this CPU')


@BF16_ONEDNN
@pytest.mark.parametrize('gelu', [False, True])
def test_bf16_inference_linear_computes_as_autocast(gelu):
    """Under bf16 autocast, inference takes oneDNN's fused linear (bias and
    GELU in the GEMM) and gives autocast's result: bf16, from bf16
    operands (one bf16 rounding apart)."""
    layer = nn.Linear(48, 96)
    x = torch.randn(7, 11, 48)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        assert ops._onednn_inference(x) == torch.bfloat16
        out = ops.linear(x, layer, gelu=gelu)
        ref = layer(x)
        ref = F.gelu(ref) if gelu else ref
    assert out.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref, rtol=2**-7, atol=1e-2)


@BF16_ONEDNN
def test_bf16_weight_copies_follow_in_place_changes():
    """The bf16 weights inference keeps are made again when the weights
    change in place (optimizer steps, loaded checkpoints), and go with
    their layer."""
    layer = nn.Linear(32, 32)
    x = torch.randn(5, 32)

    def run():
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
            return ops.linear(x, layer).float()

    before = run()
    with torch.no_grad():
        layer.weight.mul_(2)
        layer.bias.mul_(2)
    torch.testing.assert_close(run(), 2 * before, rtol=2**-7, atol=1e-2)
    kept = len(cpu_kernels._BF16_COPIES)
    other = nn.Linear(8, 8)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        ops.linear(torch.randn(2, 8), other)
    assert len(cpu_kernels._BF16_COPIES) == kept + 2
    del other
    assert len(cpu_kernels._BF16_COPIES) == kept
