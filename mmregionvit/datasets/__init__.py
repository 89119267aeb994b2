import importlib.util

from .bad_samples import BadSampleError, SkipBadSamples

__all__ = ['BadSampleError', 'SkipBadSamples']

if importlib.util.find_spec('mmdet') is not None:  # the detection transforms
    from .transforms import BoxesFromMasks, FixedOrientedResize
    __all__ += ['BoxesFromMasks', 'FixedOrientedResize']
