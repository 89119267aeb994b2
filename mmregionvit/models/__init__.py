from . import timm_models  # registers the classifiers with timm
from .checkpoint import checkpoint_filter_fn, load_pretrained
from .classifier import RegionViTClassifier
from .regionvit import RegionViT
from .variants import VARIANTS, resolve_arch

try:  # detection extras, when mmdet is installed
    from .retina_head import DetectronRetinaHead
except ImportError:
    DetectronRetinaHead = None

__all__ = [
    'DetectronRetinaHead', 'RegionViT', 'RegionViTClassifier', 'VARIANTS',
    'checkpoint_filter_fn', 'load_pretrained', 'resolve_arch', 'timm_models'
]
