from .checkpoint import checkpoint_filter_fn, load_pretrained
from .regionvit import RegionViT
from .variants import VARIANTS, resolve_arch

try:  # detection extras, when mmdet is installed
    from .max_iou_assigner import DetectronMaxIoUAssigner
    from .retina_head import DetectronRetinaHead
except ImportError:
    DetectronMaxIoUAssigner = DetectronRetinaHead = None

__all__ = [
    'DetectronMaxIoUAssigner', 'DetectronRetinaHead', 'RegionViT', 'VARIANTS',
    'checkpoint_filter_fn', 'load_pretrained', 'resolve_arch'
]
