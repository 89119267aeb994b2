from .bad_sample_hook import BadSampleHook
from .hooks import NewClassesHook
from .optim_wrapper import AmpOptimWrapper

__all__ = ['AmpOptimWrapper', 'BadSampleHook', 'NewClassesHook']
