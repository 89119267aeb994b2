import importlib.util

from . import timm_models  # registers the classifiers with timm
from .checkpoint import checkpoint_filter_fn, load_pretrained
from .classifier import RegionViTClassifier
from .regionvit import RegionViT
from .variants import VARIANTS, resolve_arch

__all__ = [
    'RegionViT', 'RegionViTClassifier', 'VARIANTS', 'checkpoint_filter_fn',
    'load_pretrained', 'resolve_arch', 'timm_models'
]

if importlib.util.find_spec('mmdet') is not None:  # the detection extras
    from .max_iou_assigner import DetectronMaxIoUAssigner  # noqa: F401
    from .retina_head import DetectronRetinaHead  # noqa: F401
    __all__ += ['DetectronMaxIoUAssigner', 'DetectronRetinaHead']
