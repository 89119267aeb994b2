"""Our scope is reachable from the mmdet, mmseg and mmpose registries."""
import pytest
import torch

import mmregionvit  # noqa: F401
from mmregionvit.models import RegionViT
from mmregionvit.registry import MODELS

ARCH = dict(
    embed_dim=[16, 16, 32, 64, 128],
    num_heads=[1, 2, 4, 8],
    depth=[1, 1, 1, 1],
    kernel_sizes=[7] * 4)


@pytest.mark.parametrize('library', ['mmdet', 'mmseg', 'mmpose'])
def test_build_from_library_registry(library):
    registry = pytest.importorskip(f'{library}.registry').MODELS
    model = registry.build(
        dict(type='mmregionvit.RegionViT', arch=ARCH, out_indices=(3, )))
    assert type(model) is RegionViT
    with torch.no_grad():
        (out, ) = model.eval()(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 128, 2, 2)


def test_own_registry_is_scoped_child_of_mmengine():
    from mmengine.registry import MODELS as ROOT
    assert MODELS.scope == 'mmregionvit'
    assert MODELS.parent is ROOT
    assert MODELS.get('RegionViT') is RegionViT
