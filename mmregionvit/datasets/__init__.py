try:  # detection transforms, when mmdet is installed
    from .transforms import BoxesFromMasks, FixedOrientedResize
except ImportError:
    BoxesFromMasks = FixedOrientedResize = None

__all__ = ['BoxesFromMasks', 'FixedOrientedResize']
