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
    from .detectron_boxes import DetectronDeltaXYWHBBoxCoder  # noqa: F401
    from .max_iou_assigner import DetectronMaxIoUAssigner  # noqa: F401
    from .retina_head import DetectronRetinaHead  # noqa: F401
    from .roi_heads import (DetectronBBoxHead, DetectronMaskHead,  # noqa: F401
                            DetectronRoIExtractor)
    from .rpn_head import DetectronRPNHead  # noqa: F401
    __all__ += [
        'DetectronBBoxHead', 'DetectronDeltaXYWHBBoxCoder',
        'DetectronMaskHead', 'DetectronMaxIoUAssigner', 'DetectronRPNHead',
        'DetectronRetinaHead', 'DetectronRoIExtractor'
    ]
