"""The official RegionViT backbone, from a clone of IBM/RegionViT, to time
ours against (``tools/benchmark.py backbone --compare-official``)."""
import importlib
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Tuple

import torch.nn as nn
from torch import Tensor

from mmregionvit.models import VARIANTS, RegionViT
from mmregionvit.models.checkpoint import checkpoint_filter_fn


@contextmanager
def _official_import() -> Iterator[None]:
    """While the official module imports: timm's model registry left as it
    is (its model names are ours there), and the deprecation notices of
    the timm module paths it imports from kept quiet."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        import timm.models.registry as registry
        register = registry.register_model
        registry.register_model = lambda fn: fn
        try:
            yield
        finally:
            registry.register_model = register


class OfficialBackbone(nn.Module):
    """The official model as a backbone: its stage outputs, detection norms
    on, as the official detectron2 wrapper calls it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        return tuple(self.model.forward_features(x, detection=True))


def official_backbone(repo: Path, arch: str) -> OfficialBackbone:
    """The official backbone of variant ``arch``, built by the code of the
    clone at ``repo``; random weights (timm's initialisation there)."""
    if not (Path(repo) / 'regionvit' / 'regionvit.py').is_file():
        raise ValueError(
            f'--compare-official {repo}: no regionvit/regionvit.py there; '
            'give a clone of https://github.com/IBM/RegionViT')
    sys.path.insert(0, str(Path(repo).resolve()))
    try:
        with _official_import():
            module = importlib.import_module('regionvit.regionvit')
    finally:
        sys.path.pop(0)
    model = module.RegionViT(**VARIANTS[arch].arch, det_norm=True)
    del model.norm, model.head  # as the official detectron2 wrapper does
    return OfficialBackbone(model)


def ours_like(official: OfficialBackbone, arch: str, **kwargs) -> RegionViT:
    """Our backbone of ``arch`` (more ``RegionViT`` arguments in
    ``kwargs``) with the official one's weights."""
    ours = RegionViT(arch=arch, **kwargs)
    ours.load_state_dict(checkpoint_filter_fn(official.model.state_dict()))
    return ours
