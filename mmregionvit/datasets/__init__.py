import importlib.util

__all__ = []

if importlib.util.find_spec('mmdet') is not None:  # the detection transforms
    from .transforms import BoxesFromMasks, FixedOrientedResize
    __all__ += ['BoxesFromMasks', 'FixedOrientedResize']
