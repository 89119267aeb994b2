"""RegionViT for OpenMMLab 3.x dense prediction."""
from .utils.checkpoint_safety import allow_mmengine_checkpoints
from .utils.config import register_config_package
from .version import __version__

allow_mmengine_checkpoints()
register_config_package()

from . import datasets  # noqa: E402,F401
from .engine import AmpOptimWrapper  # noqa: E402
from .models import RegionViT  # noqa: E402

__all__ = ['AmpOptimWrapper', 'RegionViT', '__version__']
