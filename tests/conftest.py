import math
import os
import shutil
import tempfile
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

DATA = Path(__file__).parent / 'data'
GOLDEN = ('tiny3conv_w7', 'tiny1conv_w7', 'tiny3conv_w14_peg')


def load_fixture(name: str) -> dict:
    return torch.load(DATA / f'{name}.pt', weights_only=False)


def official_arch(fixture: dict) -> dict:
    """The official constructor's kwargs of a fixture as a backbone arch:
    without the classifier's ``num_classes`` and ``det_norm``, which are
    arguments of their own."""
    return {
        k: v
        for k, v in fixture['official_kwargs'].items()
        if k not in ('num_classes', 'det_norm')
    }


def official_window_conversion(state_dict: dict, window: int) -> dict:
    """An official state dict for ``window``-sized windows, as the official
    tool (IBM/RegionViT tools/convert_cls_model_to_diff_ws.py) converts it:
    ``F.interpolate(..., mode='bicubic')`` (corners not aligned) of the
    regional embedding kernel to ``4 * window`` square and of each
    relative-position table to ``2 * window - 1`` square."""
    resize = partial(F.interpolate, mode='bicubic')
    out = dict(state_dict)
    kernel = state_dict['cls_token.proj.weight']
    out['cls_token.proj.weight'] = resize(kernel, size=(4 * window, ) * 2)
    side = 2 * window - 1
    for key, table in state_dict.items():
        if key.endswith('.rel_pos'):
            old = math.isqrt(table.shape[1])
            grid = table.reshape(1, -1, old, old)
            out[key] = resize(grid, size=(side, side)).reshape(-1, side**2)
    return out


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'cuda: needs a CUDA device (skipped without one); '
        'tools/gpu_check.py runs them')
    # torch.compile's kernels go to a cache of this run's own (the tools the
    # tests start inherit it): a cache shared with concurrent runs under
    # other instruction sets (ATEN_CPU_CAPABILITY) once gave a kernel that
    # aborted the process
    if 'TORCHINDUCTOR_CACHE_DIR' not in os.environ:
        config._inductor_cache = tempfile.mkdtemp(prefix='torchinductor_')
        os.environ['TORCHINDUCTOR_CACHE_DIR'] = config._inductor_cache


def pytest_unconfigure(config):
    cache = getattr(config, '_inductor_cache', None)
    if cache:
        shutil.rmtree(cache, ignore_errors=True)
        del os.environ['TORCHINDUCTOR_CACHE_DIR']


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def no_cpu_kernels(monkeypatch):
    """Every CPU kernel of the fast paths raises if called."""
    from mmregionvit.models import cpu_kernels

    def refuse(*args, **kwargs):
        raise AssertionError('a CPU kernel ran off the CPU')

    for name in ('NormLinear', 'NormMlp', 'NormGeluConv', 'BiasedAttention'):
        monkeypatch.setattr(getattr(cpu_kernels, name), 'apply', refuse)
    monkeypatch.setattr(cpu_kernels, 'onednn_linear', refuse)
    monkeypatch.setattr(cpu_kernels, 'nchw_copy', refuse)
