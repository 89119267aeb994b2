"""``mmregionvit.AmpOptimWrapper``: ``--amp`` on a CPU."""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper

import mmregionvit  # noqa: F401

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason='the CPU path (mmengine handles GPUs)')


class Detector(nn.Module):
    """A backbone, then a head that must see float32 (like mmcv's ops)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        features = self.backbone(x)
        assert features.dtype == torch.float32
        return self.head(features)


def build(model=None, **kwargs):
    model = model or Detector()
    cfg = dict(
        type='mmregionvit.AmpOptimWrapper',
        optimizer=dict(type='SGD', lr=0.1),
        **kwargs)
    return model, build_optim_wrapper(model, cfg)


def test_backbone_in_bfloat16_and_a_real_scaler():
    model, wrapper = build()
    reference = copy.deepcopy(model)
    dtypes = {}

    def record(name):

        def hook(module, inputs, output):
            dtypes[name] = output.dtype

        return hook

    for name in ('backbone.0', 'head'):
        model.get_submodule(name).register_forward_hook(record(name))
    x = torch.randn(3, 4)
    with wrapper.optim_context(model):
        loss = model(x).square().mean()
    assert dtypes == {'backbone.0': torch.bfloat16, 'head': torch.float32}
    assert 'forward' not in vars(model.backbone)  # restored
    wrapper.update_params(loss)
    state = wrapper.state_dict()['loss_scaler']
    assert state['scale'] == 2.0**16 and state['_growth_tracker'] == 1
    # the optimizer stepped with the unscaled gradient: the step is fp32
    # SGD's, -lr * grad, up to bfloat16 rounding (8 significant bits; a
    # few roundings of the backbone's operands move it by a few 2**-8 of
    # its size, well below a step of another length)
    reference(x).square().mean().backward()
    for p, r in zip(model.parameters(), reference.parameters(), strict=True):
        exact = -0.1 * r.grad
        torch.testing.assert_close(
            p.detach() - r.detach(),
            exact,
            rtol=0,
            atol=8 * 2**-8 * exact.abs().max().item())


class Probe(nn.Linear):
    """A model without a backbone that records its autocast state."""

    def forward(self, x):
        self.autocast = torch.is_autocast_enabled('cpu')
        out = super().forward(x)
        self.inner_dtype = out.dtype
        return out


def test_model_without_backbone_runs_whole_in_bfloat16():
    model, wrapper = build(Probe(4, 2))
    with wrapper.optim_context(model):
        out = model(torch.randn(3, 4))
        assert not torch.is_autocast_enabled('cpu')  # only inside forward
    assert model.autocast and model.inner_dtype == torch.bfloat16
    assert out.dtype == torch.float32  # cast back for the loss
    assert 'forward' not in vars(model)


def test_fixed_scale_and_bad_settings():
    _, wrapper = build(loss_scale=512.0)
    assert wrapper.loss_scaler.get_scale() == 512.0
    with pytest.raises(ValueError, match='bfloat16'):
        build(dtype='float16')
    with pytest.raises(TypeError, match='loss_scale'):
        build(loss_scale='static')
