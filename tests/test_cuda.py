"""The backbone on CUDA: golden outputs with TF32 off, gradients against the
CPU, ``with_cp``, frozen stages, odd input sizes, autocast, SDPA's kernels,
host synchronisations and ``torch.compile``. Marked ``cuda`` and skipped
without a GPU; ``tools/gpu_check.py`` runs them."""
import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import GOLDEN, load_fixture, official_arch
from test_backbone_golden import build_from_checkpoint
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from mmregionvit.models import RegionViT

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason='needs a CUDA device')
]
CUDA = torch.device('cuda')
TINY = dict(
    embed_dim=[16, 16, 32, 64, 128],
    num_heads=[1, 2, 4, 8],
    depth=[1, 1, 2, 1],
    kernel_sizes=[7, 7, 7, 7],
    peg=True)
AUTOCAST = dict(bf16=torch.bfloat16, fp16=torch.float16)
# SDPA's fused CUDA kernels, forward and backward
FUSED_SDPA = {
    '_scaled_dot_product_efficient_attention',
    '_scaled_dot_product_flash_attention',
    '_scaled_dot_product_cudnn_attention'
}
FUSED_SDPA_BACKWARD = {f'{k}_backward' for k in FUSED_SDPA}


@pytest.fixture(autouse=True)
def _no_tf32():
    """Full fp32 matmuls and convolutions, as on the CPU."""
    saved = (torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    (torch.backends.cuda.matmul.allow_tf32,
     torch.backends.cudnn.allow_tf32) = saved


def tiny_model(**kwargs) -> RegionViT:
    model = RegionViT(arch=TINY, **kwargs)
    model.init_weights()
    return model


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float().cpu() - b.float().cpu()).norm() /
            b.float().cpu().norm()).item()


@pytest.mark.parametrize('fused', [True, False], ids=['fused', 'reference'])
@pytest.mark.parametrize('name', GOLDEN)
def test_official_outputs(name, fused, tmp_path):
    """The official outputs on CUDA, inference and with autograd on."""
    fixture = load_fixture(name)
    path = tmp_path / 'release.pth'
    torch.save({'model': fixture['state_dict']}, path)
    model = build_from_checkpoint(official_arch(fixture), str(path)).to(CUDA)
    model.fused = fused
    for case in fixture['cases']:
        for grad in (False, True):
            with torch.set_grad_enabled(grad):
                outs = model(case['input'].to(CUDA))
            for i, (out, ref) in enumerate(
                    zip(outs, case['stage_outputs'], strict=True)):
                assert out.is_cuda and out.shape == ref.shape
                err = (out.cpu() - ref).abs().max().item()
                assert err <= 1e-4, f'{name} {tuple(ref.shape)} stage {i}, ' \
                    f'grad {grad}: max abs error {err:.2e}'


def gradients(model, x, weights, device):
    """Parameter and input gradients of a weighted sum of the outputs."""
    model = copy.deepcopy(model).to(device)
    x = x.to(device).requires_grad_()
    outs = model(x)
    sum((o * w.to(device)).sum() for o, w in zip(outs, weights)).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    grads['input'] = x.grad
    return grads


@pytest.mark.parametrize('fused', [True, False], ids=['fused', 'reference'])
def test_gradients_match_cpu(fused):
    """Training on CUDA gives the CPU reference path's gradients (padded
    windows, two images)."""
    model = tiny_model()
    x = torch.randn(2, 3, 100, 150)
    with torch.no_grad():
        weights = [torch.randn_like(o) for o in model(x)]
    model.fused = False
    reference = gradients(model, x, weights, 'cpu')
    model.fused = fused
    ours = gradients(model, x, weights, CUDA)
    assert ours.keys() == reference.keys()
    for name, grad in ours.items():
        assert grad.is_cuda, name
        assert relative_error(grad, reference[name]) < 1e-4, name


def test_with_cp_gradients_and_memory():
    """Gradient checkpointing: the same gradients, a lower peak."""
    model = tiny_model()
    x = torch.randn(4, 3, 256, 384)
    with torch.no_grad():
        weights = [torch.randn_like(o) for o in model(x)]
    peaks, grads = [], []
    for with_cp in (False, True):
        model.with_cp = with_cp
        for stage in model.stages:
            stage.with_cp = with_cp
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        grads.append(gradients(model, x, weights, CUDA))
        peaks.append(torch.cuda.max_memory_allocated() - start)
    for name, grad in grads[1].items():
        assert relative_error(grad, grads[0][name]) < 1e-5, name
    assert peaks[1] < peaks[0]


def test_frozen_stages():
    """Frozen stages stay in eval mode and get no gradients; the rest
    trains."""
    model = tiny_model(frozen_stages=2, drop_path_rate=0.1).to(CUDA).train()
    frozen = ('patch_embed', 'regional_embed', 'stages.0.', 'stages.1.')
    assert not model.stages[1].training and model.stages[2].training
    sum(o.mean()
        for o in model(torch.randn(2, 3, 100, 150, device=CUDA))).backward()
    for name, p in model.named_parameters():
        assert (p.grad is None) == name.startswith(frozen), name


@pytest.mark.parametrize('size', [(33, 47), (97, 131), (61, 200)])
@pytest.mark.parametrize('fused', [True, False], ids=['fused', 'reference'])
def test_odd_sizes_match_cpu(fused, size):
    """Inputs at odd sizes (padded windows, one-pixel maps) give the CPU
    reference path's outputs."""
    model = tiny_model().eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        reference = model(x)
        model.fused = fused
        outs = copy.deepcopy(model).to(CUDA)(x.to(CUDA))
    for out, ref in zip(outs, reference, strict=True):
        assert out.shape == ref.shape
        assert (out.cpu() - ref).abs().max().item() <= 1e-4


@pytest.mark.parametrize('dtype', sorted(AUTOCAST))
def test_autocast_close_to_fp32(dtype):
    """bf16 and fp16 autocast stay close to fp32 at every stage, and train
    to finite gradients."""
    model = RegionViT(arch=dict(TINY, embed_dim=[32, 32, 64, 128, 256]))
    model.init_weights()
    model.to(CUDA)
    x = torch.randn(2, 3, 100, 150, device=CUDA)
    with torch.no_grad():
        reference = model.eval()(x)
        with torch.autocast('cuda', dtype=AUTOCAST[dtype]):
            outs = model(x)
    for out, ref in zip(outs, reference, strict=True):
        assert out.dtype == AUTOCAST[dtype]
        assert relative_error(out, ref) < 2e-2
    with torch.autocast('cuda', dtype=AUTOCAST[dtype]):
        loss = sum(o.float().mean() for o in model.train()(x))
    loss.backward()
    assert all(
        torch.isfinite(p.grad).all() for p in model.parameters()
        if p.grad is not None)


class KernelOps(TorchDispatchMode):
    """The names of the aten ops run under it."""

    def __init__(self) -> None:
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


class SdpaCalls(TorchFunctionMode):
    """Each SDPA call: whether it had a mask, and the ops it ran."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        with KernelOps() as ops:
            out = func(*args, **kwargs)
        self.calls.append((kwargs.get('attn_mask') is not None, ops.names))
        return out


@pytest.mark.parametrize('dtype', ['fp32', 'bf16', 'fp16'])
@pytest.mark.parametrize('fused', [True, False], ids=['fused', 'reference'])
def test_attention_runs_fused_kernels(fused, dtype):
    """Every attention call runs one of SDPA's fused kernels, forward and
    backward (never the math fallback, which keeps the attention matrix);
    a biased (local) one the memory-efficient kernel, the only one that
    gives the bias a gradient. On the fused path its mask needs no padding
    copy inside SDPA."""
    model = tiny_model(fused=fused).to(CUDA).train()
    x = torch.randn(2, 3, 100, 150, device=CUDA)  # padded windows
    cast = AUTOCAST.get(dtype)
    with torch.autocast('cuda', dtype=cast, enabled=cast is not None):
        with SdpaCalls() as sdpa:
            outs = model(x)
    with KernelOps() as backward:
        sum(o.float().mean() for o in outs).backward()
    assert len(sdpa.calls) == 2 * sum(TINY['depth'])
    for masked, names in sdpa.calls:
        assert FUSED_SDPA & set(names), names
        if masked:
            assert '_scaled_dot_product_efficient_attention' in names
            assert not fused or 'constant_pad_nd' not in names
    assert '_scaled_dot_product_efficient_attention_backward' in \
        backward.names
    done = [n for n in backward.names if n in FUSED_SDPA_BACKWARD]
    assert len(done) == len(sdpa.calls)
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize('mode', ['inference', 'train', 'with_cp'])
@pytest.mark.parametrize('dtype', ['fp32', 'bf16'])
def test_forward_has_no_host_sync(mode, dtype):
    """CUDA's sync debug mode sees no synchronisation in the forward."""
    model = tiny_model(drop_path_rate=0.1, with_cp=mode == 'with_cp').to(CUDA)
    model.train(mode != 'inference')
    x = torch.randn(2, 3, 100, 150, device=CUDA)  # padded windows
    cast = AUTOCAST.get(dtype)

    def forward():
        with torch.set_grad_enabled(mode != 'inference'), torch.autocast(
                'cuda', dtype=cast, enabled=cast is not None):
            return model(x)

    forward()  # first calls: caches, handles
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        forward()
    finally:
        torch.cuda.set_sync_debug_mode('default')


@pytest.mark.parametrize('dtype', ['fp32', 'bf16', 'fp16'])
def test_cpu_kernels_never_run(dtype, no_cpu_kernels):
    """The fast paths' CPU kernels stay off CUDA: training and inference."""
    model = tiny_model().to(CUDA)
    x = torch.randn(2, 3, 100, 150, device=CUDA)
    cast = AUTOCAST.get(dtype)
    with torch.autocast('cuda', dtype=cast, enabled=cast is not None):
        with torch.no_grad():
            model.eval()(x)
        outs = model.train()(x)
    sum(o.float().mean() for o in outs).backward()


def test_compiled_inference_matches_eager():
    """torch.compile on CUDA: one graph, eager's outputs."""
    import torch._dynamo as dynamo
    dynamo.reset()
    model = RegionViT(arch=dict(TINY, depth=[1, 1, 1, 1])).to(CUDA).eval()
    x = torch.randn(2, 3, 100, 150, device=CUDA)
    with torch.no_grad():
        report = dynamo.explain(model)(x)
        assert report.graph_break_count == 0, report.break_reasons
        assert report.graph_count == 1
        eager = model(x)
        compiled = torch.compile(model)(x)
    for a, b in zip(compiled, eager, strict=True):
        assert a.is_contiguous()
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
