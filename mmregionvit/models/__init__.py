from .checkpoint import checkpoint_filter_fn, load_pretrained
from .regionvit import ARCH_SETTINGS, RegionViT

__all__ = ['ARCH_SETTINGS', 'RegionViT', 'checkpoint_filter_fn',
           'load_pretrained']
