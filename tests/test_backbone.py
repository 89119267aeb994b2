"""Behaviour of the RegionViT backbone beyond the golden outputs."""
import json
import math
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from conftest import (GOLDEN, load_fixture, official_arch,
                      official_window_conversion)
from mmengine.logging import MMLogger
from tolerances import check_close

from mmregionvit.models import (VARIANTS, RegionViT, checkpoint_filter_fn,
                                cpu_kernels, ops)

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(
    embed_dim=[16, 16, 32, 64, 128],
    num_heads=[1, 2, 4, 8],
    depth=[1, 1, 2, 1],
    kernel_sizes=[7, 7, 7, 7])


def local_size(size: int, conv_type: str) -> int:
    if conv_type == '3conv':
        return math.ceil(math.ceil(size / 2) / 2)
    return (size - 2) // 4 + 1


def classifier_params(backbone: RegionViT, classes: int = 1000) -> int:
    """Parameters of the official classifier around ``backbone``: the
    backbone's own, the final norm and the head."""
    width = backbone.num_features[-1]
    own = sum(p.numel() for p in backbone.parameters())
    return own + 2 * width + classes * (width + 1)


@pytest.mark.parametrize('name', GOLDEN)
def test_classifier_params_formula_on_official_models(name):
    """The formula above counts what an official model holds (detection
    norms included)."""
    fixture = load_fixture(name)
    model = RegionViT(arch=official_arch(fixture), det_norm=True)
    classes = fixture['official_kwargs']['num_classes']
    # the state dict lists each downsampling projection twice (as proj and
    # as proj_cls, one shared module); parameters() counts it once
    official = sum(v.numel() for k, v in fixture['state_dict'].items()
                   if '.proj_cls.' not in k)
    assert classifier_params(model, classes) == official


@pytest.mark.slow
@pytest.mark.parametrize('arch', sorted(VARIANTS))
def test_variant_params_and_shapes(arch):
    model = RegionViT(arch=arch, det_norm=False).eval()
    assert classifier_params(model) == VARIANTS[arch].params
    conv_type = VARIANTS[arch].arch['patch_conv_type']
    dims = VARIANTS[arch].arch['embed_dim'][1:]
    for h, w in [(224, 224), (256, 192), (100, 150)]:
        with torch.no_grad():
            outs = model(torch.randn(1, 3, h, w))
        eh, ew = local_size(h, conv_type), local_size(w, conv_type)
        assert len(outs) == len(dims)
        for i, out in enumerate(outs):
            assert out.shape == (1, dims[i], eh, ew), (arch, h, w, i)
            assert torch.isfinite(out).all()
            eh, ew = math.ceil(eh / 2), math.ceil(ew / 2)


def test_out_indices_and_custom_arch():
    model = RegionViT(arch=TINY, out_indices=(1, -1)).eval()
    assert model.out_indices == (1, 3)
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 64, 96))
    assert [o.shape for o in outs] == [(2, 32, 8, 12), (2, 128, 2, 3)]
    # the official constructor's kwargs work, its img_size ignored (any
    # input size works)
    fixture = load_fixture('tiny1conv_w7')
    assert 'img_size' in official_arch(fixture)
    RegionViT(arch=official_arch(fixture))


@pytest.mark.parametrize('key, where', [('det_norm', 'RegionViT'),
                                        ('num_classes', 'classifier')])
def test_non_arch_keys_in_arch_are_errors(key, where):
    """Official kwargs that are not architecture are refused by name, not
    silently dropped."""
    arch = dict(TINY, **{key: 1})
    with pytest.raises(KeyError, match=f"'{key}'.*{where}"):
        RegionViT(arch=arch)


def test_frozen_stages_stay_frozen():
    model = RegionViT(arch=TINY, frozen_stages=1)
    assert model.train() is model  # chaining works
    frozen = [model.patch_embed, model.regional_embed, model.stages[0]]
    for m in frozen:
        assert not m.training
        assert all(not p.requires_grad for p in m.parameters())
    for m in model.stages[1:]:
        assert m.training
        assert all(p.requires_grad for p in m.parameters())
    assert model.train().eval() is model and not model.stages[1].training
    x = torch.randn(1, 3, 64, 64)
    sum(o.sum() for o in model.train()(x)).backward()
    assert model.stages[0].blocks[0].attn.qkv.weight.grad is None
    assert model.stages[1].blocks[0].attn.qkv.weight.grad is not None


@pytest.mark.parametrize('bf16', [False, True])
def test_with_cp_gives_same_gradients(bf16):
    torch.manual_seed(1)
    ref = RegionViT(arch=dict(TINY, peg=True))
    ref.init_weights()
    cp_model = RegionViT(arch=dict(TINY, peg=True), with_cp=True)
    cp_model.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 72, 100)
    grads = []
    for model in (ref, cp_model):
        model.train()
        model.zero_grad()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            outs = model(x)
        sum((o.float() * o.float()).mean() for o in outs).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, g in grads[0].items():
        # the recomputation repeats the same ops, under the same autocast
        torch.testing.assert_close(
            grads[1][name], g, rtol=1e-5, atol=1e-6, msg=name)


def test_drop_path_rates():
    model = RegionViT(arch=TINY, drop_path_rate=0.2)
    blocks = [b for s in model.stages for b in s.blocks]
    assert isinstance(blocks[0].drop_path, torch.nn.Identity)
    rates = [b.drop_path.drop_prob for b in blocks[1:]]
    assert rates == pytest.approx([0.05, 0.1, 0.15, 0.2])


def test_input_errors():
    model = RegionViT(arch=TINY)
    with pytest.raises(ValueError, match=r'\(N, C, H, W\)'):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match='3 input channels, got 1'):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(KeyError, match='small_w14_peg'):
        RegionViT(arch='smal')
    with pytest.raises(KeyError, match='window'):
        RegionViT(arch=dict(TINY, window=7))
    with pytest.raises(ValueError, match='embed_dim'):
        RegionViT(arch=dict(TINY, embed_dim=[16, 32, 64, 128]))


def test_checkpoint_mismatch_lists_keys(tmp_path):
    sd = dict(load_fixture('tiny3conv_w7')['state_dict'])
    del sd['layers.2.block.1.attn.qkv.bias']
    sd['layers.2.block.1.extra.weight'] = torch.zeros(1)
    sd['layers.3.block.1.mlp.fc1.weight'] = torch.zeros(3, 3)
    path = tmp_path / 'bad.pth'
    torch.save({'model': sd}, path)
    model = RegionViT(
        arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(KeyError) as info:
        model.init_weights()
    msg = str(info.value)
    assert 'missing (1): stages.2.blocks.0.attn.qkv.bias' in msg
    assert 'unexpected (1): stages.2.blocks.0.extra.weight' in msg
    assert 'stages.3.blocks.0.mlp.fc1.weight: checkpoint (3, 3) vs model ' \
        '(512, 128)' in msg


def test_classification_checkpoint_without_det_norms(tmp_path):
    sd = {
        k: v
        for k, v in load_fixture('tiny3conv_w7')['state_dict'].items()
        if not k[:5] in ('norm0', 'norm1', 'norm2', 'norm3')
    }
    path = tmp_path / 'cls.pth'
    torch.save({'model': sd}, path)
    model = RegionViT(
        arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert torch.equal(model.stages[0].out_norm.weight, torch.ones(16))
    torch.testing.assert_close(model.stages[1].blocks[0].attn.qkv.weight,
                               sd['layers.1.block.1.attn.qkv.weight'])


def test_window_size_conversion(tmp_path, capsys):
    sd = load_fixture('tiny3conv_w7')['state_dict']
    path = tmp_path / 'w7.pth'
    torch.save({'model': sd}, path)
    MMLogger.get_instance('mmregionvit-test')
    model = RegionViT(
        arch=dict(TINY, kernel_sizes=[14] * 4),
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert 'window size change' in capsys.readouterr().out
    expected = official_window_conversion(sd, 14)
    torch.testing.assert_close(model.stages[1].blocks[0].attn.rel_pos.data,
                               expected['layers.1.block.1.attn.rel_pos'])
    assert model.regional_embed.weight.shape[-2:] == (56, 56)
    torch.testing.assert_close(model.regional_embed.weight.data,
                               expected['cls_token.proj.weight'])
    with torch.no_grad():
        assert model(torch.randn(1, 3, 112, 112))[0].shape == (1, 16, 28, 28)


def test_filter_keeps_own_layout():
    model = RegionViT(arch=TINY)
    sd = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    sd['neck.conv.weight'] = torch.zeros(1)
    out = checkpoint_filter_fn(sd, [7] * 4)
    assert set(out) == set(model.state_dict())


def test_peg_model_from_checkpoint_without_peg(tmp_path):
    fixture = load_fixture('tiny3conv_w7')
    path = tmp_path / 'nopeg.pth'
    torch.save({'model': fixture['state_dict']}, path)
    plain = RegionViT(
        arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    peg = RegionViT(
        arch=dict(TINY, peg=True),
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    plain.init_weights()
    peg.init_weights()
    assert all(
        torch.equal(s.peg.weight, torch.zeros_like(s.peg.weight))
        for s in peg.stages)
    x = fixture['cases'][0]['input']  # 112x112: no padded tokens to reset
    with torch.no_grad():
        for a, b in zip(plain.eval()(x), peg.eval()(x), strict=True):
            torch.testing.assert_close(a, b)


def test_inference_fast_path_matches_autograd_path(monkeypatch):
    """No-grad inference runs windows in chunks through fused linears; it
    must compute what the autograd path computes (padding included)."""
    monkeypatch.setattr(ops, 'CHUNK_TOKENS', 120)  # 2 windows/chunk
    fixture = load_fixture('tiny3conv_w14_peg')
    model = RegionViT(arch=official_arch(fixture)).eval()
    model.init_weights()
    x = fixture['cases'][2]['input']  # 100x150: padded windows
    with torch.no_grad():
        fast = model(x)
    slow = model(x)
    assert slow[0].requires_grad
    for a, b in zip(fast, slow, strict=True):
        check_close('fast_path', a, b.detach(), 'chunked inference')


def test_inference_chunks_windows_on_cpu_only(monkeypatch):
    """Cache-sized chunks are a CPU matter; other devices (here the meta
    device, standing in for a GPU) take a block's windows at once."""
    sizes = []
    local = ops._local

    def spy(block, x, mask, out=None):
        sizes.append(x.shape[0])
        return local(block, x, mask, out)

    monkeypatch.setattr(ops, '_local', spy)
    monkeypatch.setattr(ops, 'CHUNK_TOKENS', 120)  # 2 windows/chunk
    arch = dict(TINY, depth=[1, 1, 1, 1])
    model = RegionViT(arch=arch).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 100, 150))
        cpu = list(sizes)
        sizes.clear()
        model.to('meta')(torch.empty(1, 3, 100, 150, device='meta'))
    assert max(cpu) == 2 and len(cpu) > 4
    assert len(sizes) == 4 and sum(sizes) == sum(cpu)


@pytest.mark.slow
def test_compiled_inference_matches_eager(monkeypatch):
    """torch.compile runs the chunked inference path and the output copy as
    eager does (several chunks, padded windows)."""
    monkeypatch.setattr(ops, 'CHUNK_TOKENS', 120)  # 2 windows/chunk
    torch._dynamo.reset()
    model = RegionViT(arch=dict(TINY, peg=True)).eval()
    x = torch.randn(1, 3, 100, 150)
    with torch.no_grad():
        eager = model(x)
        compiled = torch.compile(model)(x)
    for a, b in zip(compiled, eager, strict=True):
        assert a.is_contiguous()
        check_close('fast_path', a, b, 'compiled')


def test_nchw_copy_op_registration():
    """The output copy's fake (compile-time) and autograd registrations
    agree with its kernel."""
    base = torch.randn(2, 9, 13, 5, requires_grad=True)
    torch.library.opcheck(cpu_kernels.nchw_copy,
                          (base[:, :7, :11].permute(0, 3, 1, 2), ))


def test_contiguous_nchw_values_and_gradients():
    """The per-image transposing copy equals ``.contiguous()``, gradients
    included, for cropped (padded) channels-last views and batches."""
    torch.manual_seed(0)
    base = torch.randn(2, 9, 13, 5, requires_grad=True)  # NHWC memory
    view = base[:, :7, :11].permute(0, 3, 1, 2)  # cropped NCHW view
    out = ops.contiguous_nchw(view)
    assert out.is_contiguous()
    torch.testing.assert_close(out, view.contiguous(), rtol=0, atol=0)
    weight = torch.randn_like(out)
    grad, = torch.autograd.grad((out * weight).sum(), base)
    ref, = torch.autograd.grad((view.contiguous() * weight).sum(), base)
    torch.testing.assert_close(grad, ref, rtol=0, atol=0)


@pytest.mark.parametrize('grad', [False, True])
def test_outputs_are_contiguous_nchw(grad):
    model = RegionViT(arch=TINY).eval()
    with torch.set_grad_enabled(grad):
        outs = model(torch.randn(2, 3, 100, 150))
    assert all(o.is_contiguous() for o in outs)


def test_bf16_autocast_within_tolerance():
    """bf16 autocast stays within 2% (relative L2) of fp32 at every stage."""
    model = RegionViT(arch=dict(TINY, embed_dim=[32, 32, 64, 128, 256]))
    model.init_weights()
    x = torch.randn(2, 3, 100, 150)
    with torch.no_grad():
        ref = model.eval()(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(x)
    for a, b in zip(out, ref, strict=True):
        assert a.dtype == torch.bfloat16
        assert ((a.float() - b).norm() / b.norm()).item() < 2e-2


@pytest.mark.slow
@pytest.mark.parametrize('size', [(112, 112), (100, 150)])
def test_compiles_as_one_graph(size):
    import torch._dynamo as dynamo
    model = RegionViT(arch=dict(TINY, peg=True)).eval()
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter('always')
        report = dynamo.explain(model)(torch.randn(1, 3, *size))
    assert report.graph_break_count == 0, report.break_reasons
    assert report.graph_count == 1
    # the padding-pattern cache is not traced through (dynamo warns)
    assert not [w for w in caught if 'lru_cache' in str(w.message)]


# Downsample's weight gradients under CPU bf16 autocast, relative to
# float32's, for maps one pixel wide; printed as one JSON list
BF16_DOWNSAMPLE = textwrap.dedent("""
    import json
    import torch
    from mmregionvit.models.regionvit import Downsample
    errors = []
    for hw in [(1, 1), (3, 1), (5, 1)]:
        torch.manual_seed(0)
        down = Downsample(64, 128, 'sc')
        x = torch.randn(2, 64, *hw)

        def weight_grad(bf16):
            down.zero_grad()
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
                y = down(x)
            (y.float()**2).mean().backward()
            return down[2].weight.grad.clone()

        exact = weight_grad(False)
        error = (weight_grad(True) - exact).abs().max() / exact.abs().max()
        errors.append(error.item())
    print(json.dumps(errors))
    """)


@pytest.mark.slow
def test_downsample_bf16_gradients_on_one_pixel_wide_maps():
    """CPU bf16 autocast's strided grouped convolution (oneDNN's bf16
    weight-gradient kernel) gives wrong, often huge, weight gradients for
    maps one pixel wide (torch 2.14): it reads memory it did not
    write. Downsample sidesteps it. The check runs in a process whose
    allocations glibc fills with junk (MALLOC_PERTURB_), so that the
    kernel, where it has the fault, fails every time rather than when
    freed memory happens to hold junk."""
    env = dict(
        os.environ,
        MALLOC_PERTURB_='165',
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])))
    out = subprocess.run([sys.executable, '-c', BF16_DOWNSAMPLE],
                         capture_output=True,
                         text=True,
                         env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    errors = json.loads(out.stdout.splitlines()[-1])
    assert max(errors) <= 0.02, errors


def test_fused_switch_reaches_every_module():
    model = RegionViT(arch=TINY, fused=False)
    flags = [m.fused for m in model.modules() if hasattr(m, 'fused')]
    assert len(flags) > 5 and not any(flags)
    model.fused = True
    assert all(m.fused for m in model.modules() if hasattr(m, 'fused'))


@pytest.mark.slow
# the tracer's notes on the Python values it freezes (window padding is
# decided on plain ints), as the ONNX export silences them
@pytest.mark.filterwarnings('ignore::torch.jit.TracerWarning')
def test_tracing_records_the_reference():
    """Tracers see the plain modules (no custom op, no oneDNN call), and the
    traced graph computes what the fused eager path computes."""
    model = RegionViT(arch=dict(TINY, peg=True)).eval()
    model.init_weights()
    x = torch.randn(2, 3, 100, 150)  # padded windows
    with torch.no_grad():
        eager = model(x)
        traced = torch.jit.trace(model, x, check_trace=False)
        graph = str(traced.inlined_graph)
        outs = traced(x)
    assert 'scaled_dot_product_attention' in graph
    assert 'nchw_copy' not in graph and 'mkldnn' not in graph
    for a, b in zip(outs, eager, strict=True):
        check_close('fast_path', a, b, 'traced')


@pytest.mark.slow
def test_export_records_the_reference():
    """torch.export sees the plain modules too."""
    model = RegionViT(arch=TINY).eval()
    x = torch.randn(1, 3, 100, 150)
    program = torch.export.export(model, (x, ))
    targets = {str(n.target) for n in program.graph.nodes}
    assert not [t for t in targets if 'mmregionvit' in t or 'mkldnn' in t]
    with torch.no_grad():
        for a, b in zip(program.module()(x), model(x), strict=True):
            check_close('fast_path', a, b, 'exported')
