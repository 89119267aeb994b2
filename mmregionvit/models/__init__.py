from .checkpoint import checkpoint_filter_fn, load_pretrained
from .regionvit import RegionViT
from .variants import VARIANTS, resolve_arch

try:  # detection extras, when mmdet is installed
    from .detectron_boxes import DetectronDeltaXYWHBBoxCoder
    from .retina_head import DetectronRetinaHead
    from .roi_heads import (DetectronBBoxHead, DetectronMaskHead,
                            DetectronRoIExtractor)
    from .rpn_head import DetectronRPNHead
except ImportError:
    DetectronDeltaXYWHBBoxCoder = DetectronRetinaHead = None
    DetectronBBoxHead = DetectronMaskHead = DetectronRoIExtractor = None
    DetectronRPNHead = None

__all__ = [
    'DetectronBBoxHead', 'DetectronDeltaXYWHBBoxCoder', 'DetectronMaskHead',
    'DetectronRPNHead', 'DetectronRetinaHead', 'DetectronRoIExtractor',
    'RegionViT', 'VARIANTS', 'checkpoint_filter_fn', 'load_pretrained',
    'resolve_arch'
]
