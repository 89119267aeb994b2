from .checkpoint import checkpoint_filter_fn, load_pretrained
from .regionvit import ARCH_SETTINGS, RegionViT

try:  # detection extras, when mmdet is installed
    from .retina_head import DetectronRetinaHead
except ImportError:
    DetectronRetinaHead = None

__all__ = [
    'ARCH_SETTINGS', 'DetectronRetinaHead', 'RegionViT',
    'checkpoint_filter_fn', 'load_pretrained'
]
