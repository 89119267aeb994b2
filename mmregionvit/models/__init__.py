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
    from .detectron_boxes import DetectronDeltaXYWHBBoxCoder
    from .max_iou_assigner import DetectronMaxIoUAssigner
    from .retina_head import DetectronRetinaHead
    from .roi_heads import (DetectronBBoxHead, DetectronMaskHead,
                            DetectronRoIExtractor)
    from .rpn_head import DetectronRPNHead
    __all__ += [
        'DetectronBBoxHead', 'DetectronDeltaXYWHBBoxCoder',
        'DetectronMaskHead', 'DetectronMaxIoUAssigner', 'DetectronRPNHead',
        'DetectronRetinaHead', 'DetectronRoIExtractor'
    ]
