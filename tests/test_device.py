"""The backbone off the CPU, checked without a GPU: the meta device stands in
for one. It runs no kernel, so an op that needs a tensor's values on the host
(a host synchronisation on a GPU) cannot run on it, and :class:`DeviceAudit`
also catches tensors made on another device (e.g. masks built on the CPU).
"""
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from mmregionvit.models import RegionViT, ops

aten = torch.ops.aten
TINY = dict(
    embed_dim=[16, 16, 32, 64, 128],
    num_heads=[1, 2, 4, 8],
    depth=[1, 1, 2, 1],
    kernel_sizes=[7, 7, 7, 7],
    peg=True)
# Ops that read a tensor's values on the host: on a GPU each waits for it.
HOST_READS = {
    aten._local_scalar_dense, aten.nonzero, aten.is_nonzero, aten.equal,
    aten.masked_select, aten._unique2, aten.unique_consecutive,
    aten.unique_dim, aten.repeat_interleave
}


class DeviceAudit(TorchDispatchMode):
    """Records ops that read values on the host and ops that touch a tensor
    on another device than ``device``."""

    def __init__(self, device: str) -> None:
        super().__init__()
        self.device = device
        self.ops = 0
        self.host_reads = []
        self.foreign = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        if func.overloadpacket in HOST_READS:
            self.host_reads.append(str(func))
            raise AssertionError(f'{func} reads values on the host')
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves((args, kwargs, out)):
            if isinstance(t, torch.Tensor) and t.device.type != self.device:
                self.foreign.append((str(func), str(t.device)))
        return out


@pytest.mark.parametrize(
    'fused, mode, size', [
        (True, 'inference', (100, 150)),
        (True, 'train', (100, 150)),
        (True, 'train', (112, 112)),
        (True, 'with_cp', (100, 150)),
        (True, 'frozen', (100, 150)),
        (False, 'inference', (100, 150)),
        (False, 'train', (100, 150)),
    ],
    ids=lambda v: 'x'.join(map(str, v)) if isinstance(v, tuple) else str(v))
def test_stays_on_device_without_host_reads(fused, mode, size, no_cpu_kernels):
    """Forward and backward on the meta device: no op reads values on the
    host, every tensor stays on the device, no CPU kernel runs."""
    model = RegionViT(
        arch=TINY,
        fused=fused,
        drop_path_rate=0.1,
        with_cp=mode == 'with_cp',
        frozen_stages=1 if mode == 'frozen' else -1).to('meta')
    x = torch.empty(2, 3, *size, device='meta')
    with DeviceAudit('meta') as audit:
        if mode == 'inference':
            with torch.no_grad():
                outs = model.eval()(x)
        else:
            outs = model.train()(x)
            forward_ops = audit.ops
            sum(o.sum() for o in outs).backward()
            assert audit.ops > 1.5 * forward_ops  # backward audited too
    assert audit.ops > 100 and not audit.host_reads
    assert not audit.foreign, sorted(set(audit.foreign))[:5]
    assert all(o.device.type == 'meta' for o in outs)
    if mode != 'inference':
        frozen = ('patch_embed', 'regional_embed',
                  'stages.0.') if mode == 'frozen' else ()
        for name, p in model.named_parameters():
            assert (p.grad is not None) != name.startswith(frozen), name


@pytest.mark.parametrize(
    'size', [(112, 112), (100, 150)], ids=['whole-windows', 'padded'])
@pytest.mark.parametrize('grad', [False, True])
def test_attention_masks_laid_out_for_sdpa(size, grad, monkeypatch):
    """Off the CPU, each local attention's mask reaches SDPA in the query's
    dtype, one per window or one for all, with every stride but the last a
    multiple of 8 elements: what CUDA's memory-efficient kernel reads in
    place (it copies any other mask into padded rows, call by call)."""
    calls = []
    sdpa = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kwargs):
        calls.append((q.shape, q.dtype, attn_mask))
        return sdpa(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', spy)
    model = RegionViT(arch=TINY).to('meta').train(grad)
    with torch.set_grad_enabled(grad):
        model(torch.empty(2, 3, *size, device='meta'))
    masks = [(shape, dtype, m) for shape, dtype, m in calls if m is not None]
    assert len(masks) == sum(TINY['depth'])  # one per block
    padded = False
    for shape, dtype, mask in masks:
        assert mask.dtype == dtype and mask.dim() == 4
        assert mask.shape[0] in (1, shape[0])
        padded |= mask.shape[0] > 1
        assert mask.stride(-1) == 1
        assert all(s % 8 == 0 for s in mask.stride()[:-1]), mask.stride()
        assert mask.requires_grad == grad
    assert padded == (size == (100, 150))


@pytest.mark.parametrize('group, windows, length', [(1, 6, 10), (6, 6, 10),
                                                    (3, 6, 10), (2, 4, 16)])
def test_sdpa_mask_tiles_like_repeat(group, windows, length):
    """``sdpa_mask`` gives the values of ``mask.repeat``, cast, and passes
    the same gradient back."""
    mask = torch.randn(group, 2, length, length, requires_grad=True)
    out = ops.sdpa_mask(mask, windows, torch.float64)
    reps = 1 if group == 1 else windows // group
    expected = mask.double().repeat(reps, 1, 1, 1)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    weight = torch.randn_like(out)
    grad, = torch.autograd.grad((out * weight).sum(), mask)
    ref, = torch.autograd.grad((expected * weight).sum(), mask)
    torch.testing.assert_close(grad, ref)


@pytest.mark.slow
@pytest.mark.parametrize('grad', [False, True])
def test_compiles_as_one_graph_off_cpu(grad):
    """torch.compile traces the path other devices take (aligned masks, all
    windows at once) as one graph, in inference and in training."""
    import torch._dynamo as dynamo
    model = RegionViT(arch=dict(TINY, depth=[1, 1, 1, 1])).to('meta')
    model.train(grad)
    with torch.set_grad_enabled(grad):
        report = dynamo.explain(model)(
            torch.empty(2, 3, 100, 150, device='meta'))
    assert report.graph_break_count == 0, report.break_reasons
    assert report.graph_count == 1
