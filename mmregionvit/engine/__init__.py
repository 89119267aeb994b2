from .bad_sample_hook import BadSampleHook
from .optim_wrapper import AmpOptimWrapper

__all__ = ['AmpOptimWrapper', 'BadSampleHook']
