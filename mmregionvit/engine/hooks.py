"""Fine-tuning a detector or segmentor on classes of one's own."""
from typing import Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop

from ..registry import HOOKS


@HOOKS.register_module()
class NewClassesHook(Hook):
    """Start training from a checkpoint made for other classes: the
    class-specific layers whose shapes do not fit keep the model's own
    initialisation, with one log line naming them, and everything else
    loads.

    Args:
        predictors: The model's class-specific layers, e.g.
            ``['roi_head.bbox_head.fc_cls', 'roi_head.bbox_head.fc_reg']``.
            Shapes that differ elsewhere are left to mmengine's report.
    """
    priority = 'VERY_HIGH'

    def __init__(self, predictors: Sequence[str]) -> None:
        self.prefixes = tuple(f'{p}.' for p in predictors)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # only when training: a checkpoint to test must fit as it is
        if not isinstance(runner._train_loop, BaseLoop):
            return
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        own = model.state_dict()
        state = checkpoint.get('state_dict', checkpoint)
        skipped = [
            k for k in state if k.startswith(self.prefixes) and k in own
            and state[k].shape != own[k].shape
        ]
        if not skipped:
            return
        shapes = ', '.join(f'{k} {_shape(state[k])} (here {_shape(own[k])})'
                           for k in skipped)
        for key in skipped:
            state[key] = own[key]
        runner.logger.info(
            f'checkpoint made for other classes: {len(skipped)} '
            'class-specific tensors not loaded, they keep their '
            f'initialisation: {shapes}')


def _shape(tensor) -> str:
    return 'x'.join(str(d) for d in tensor.shape)
