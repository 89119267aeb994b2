"""Grad-CAM on RegionViT's local tokens.

The activations are the local tokens entering each stage's last block (the
tokens the last attention of the stage reads, as Grad-CAM takes a ViT's
last block input); the gradients are those of one score: a class logit, a
detection's score. The map is ``relu(sum_c w_c A_c)`` with ``w_c`` the
mean gradient of channel ``c`` over the image's tokens.
"""
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import Tensor

from ..models.regionvit import RegionViT
from .attention import StageRecord, watch_stages

Maps = Dict[int, Tensor]


def grad_cam(backbone: RegionViT, stages: Sequence[int],
             score: Callable[[], Tensor]) -> Tuple[List[StageRecord], Maps]:
    """The stages' records (no attention) and ``{stage: (h, w) map}`` of
    image 0 for the scalar ``score()``, which runs the model (and so the
    backbone) once."""
    inputs: Dict[int, Tensor] = {}

    def hook(index):

        def before(block, args):
            x = args[0]
            if not x.requires_grad:  # after frozen stages: a leaf
                x.requires_grad_()
            inputs[index] = x

        return before

    handles = [
        backbone.stages[i].blocks[-1].register_forward_pre_hook(hook(i))
        for i in stages
    ]
    try:
        with torch.enable_grad(), watch_stages(backbone) as records:
            value = score()
            acts = [inputs[i] for i in stages]
            if not value.requires_grad:
                raise ValueError('the score to explain does not depend on '
                                 'the backbone')
            grads = torch.autograd.grad(value, acts, allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    layouts = {rec.index: rec.layout for rec in records}
    maps = {}
    for i, act, grad in zip(stages, acts, grads):
        if grad is None:
            grad = torch.zeros_like(act)
        act = layouts[i].local_map(act.detach())[0]
        grad = layouts[i].local_map(grad)[0]
        weights = grad.mean((1, 2))
        maps[i] = (weights[:, None, None] * act).sum(0).relu()
    return records, maps
