import importlib.util

from .checkpoint import checkpoint_filter_fn, load_pretrained
from .regionvit import RegionViT
from .variants import VARIANTS, resolve_arch

__all__ = [
    'RegionViT', 'VARIANTS', 'checkpoint_filter_fn', 'load_pretrained',
    'resolve_arch'
]

if importlib.util.find_spec('mmdet') is not None:  # the detection extras
    from .retina_head import DetectronRetinaHead  # noqa: F401
    __all__.append('DetectronRetinaHead')
