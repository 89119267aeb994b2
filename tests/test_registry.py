"""Our scope is reachable from the mmdet, mmseg and mmpose registries;
the detection extras are there exactly when mmdet is."""
import subprocess
import sys
import textwrap

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


def _import_in_subprocess(prelude: str) -> subprocess.CompletedProcess:
    """``import mmregionvit.models`` in a fresh interpreter after
    ``prelude``; prints whether the detection extras are there."""
    code = prelude + textwrap.dedent("""
        import mmregionvit.models as models
        print('DetectronRetinaHead' in models.__all__,
              hasattr(models, 'DetectronRetinaHead'))
        """)
    return subprocess.run([sys.executable, '-c', code],
                          capture_output=True,
                          text=True)


@pytest.mark.slow
def test_detection_extras_only_with_mmdet():
    pytest.importorskip('mmdet')
    out = _import_in_subprocess('')
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ['True', 'True']
    # mmdet absent: no head, no error
    out = _import_in_subprocess(
        textwrap.dedent("""
        import importlib.util
        find_spec = importlib.util.find_spec
        importlib.util.find_spec = \\
            lambda name, *a: None if name == 'mmdet' else find_spec(name, *a)
        """))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ['False', 'False']


@pytest.mark.slow
def test_a_broken_mmdet_is_not_hidden():
    """With mmdet installed, an error importing the detection head surfaces
    instead of leaving the head silently missing."""
    pytest.importorskip('mmdet')
    out = _import_in_subprocess(
        textwrap.dedent("""
        import sys

        class Broken:
            def find_spec(self, name, path=None, target=None):
                if name == 'mmdet.models.dense_heads':
                    raise ImportError('mmdet.models.dense_heads is broken')

        sys.meta_path.insert(0, Broken())
        """))
    assert out.returncode != 0
    assert 'ImportError: mmdet.models.dense_heads is broken' in out.stderr
