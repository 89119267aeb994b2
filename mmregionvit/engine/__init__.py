from .hooks import NewClassesHook
from .optim_wrapper import AmpOptimWrapper

__all__ = ['AmpOptimWrapper', 'NewClassesHook']
