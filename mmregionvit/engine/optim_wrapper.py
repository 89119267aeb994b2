"""Mixed-precision training on any device, CPU included."""
from contextlib import contextmanager
from typing import Iterator, Optional, Union

import torch
import torch.nn as nn
from mmengine.device import (is_cuda_available, is_mlu_available,
                             is_musa_available, is_npu_available)
from mmengine.optim import AmpOptimWrapper as _MMEngineAmpOptimWrapper
from mmengine.optim import OptimWrapper
from mmengine.utils import apply_to

from ..registry import OPTIM_WRAPPERS


def _has_accelerator() -> bool:
    return (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


@OPTIM_WRAPPERS.register_module()
class AmpOptimWrapper(_MMEngineAmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` that also trains on a CPU.

    With an accelerator it is mmengine's wrapper unchanged. mmengine's refuses
    to start without one; here, on a CPU, the model's ``backbone`` (the whole
    model if it has none) runs under bfloat16 autocast, the only dtype CPU
    autocast takes, and hands float32 features on: mmcv's CPU ops (NMS,
    RoIAlign) accept float32 only. The loss goes through a real
    ``torch.amp.GradScaler('cpu')``, so ``--amp`` behaves the same on every
    machine and the scaler's state is checkpointed and resumed.

    Args:
        loss_scale: ``'dynamic'``, a fixed initial scale, or ``GradScaler``
            keyword arguments, as for mmengine's wrapper.
        dtype: autocast dtype; on a CPU only ``None`` or bfloat16.
        use_fsdp: as for mmengine's wrapper (accelerators only).
    """

    def __init__(self,
                 loss_scale: Union[str, float, dict] = 'dynamic',
                 dtype: Optional[Union[str, torch.dtype]] = None,
                 use_fsdp: bool = False,
                 **kwargs) -> None:
        self.on_cpu = not _has_accelerator()
        if not self.on_cpu:
            super().__init__(loss_scale, dtype, use_fsdp, **kwargs)
            return
        if dtype not in (None, 'bfloat16', torch.bfloat16):
            raise ValueError(
                'mixed precision on a CPU runs in bfloat16, got '
                f"dtype={dtype!r}: leave optim_wrapper.dtype unset or set it "
                "to 'bfloat16'")
        if use_fsdp:
            raise ValueError('use_fsdp=True needs an accelerator (FSDP)')
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        if loss_scale == 'dynamic':
            scaler_kwargs = {}
        elif isinstance(loss_scale, float):
            self._scale_update_param = loss_scale
            scaler_kwargs = dict(init_scale=loss_scale)
        elif isinstance(loss_scale, dict):
            scaler_kwargs = loss_scale
        else:
            raise TypeError("loss_scale must be 'dynamic', a float or a dict "
                            f'of GradScaler arguments, got {loss_scale!r}')
        self.loss_scaler = torch.amp.GradScaler('cpu', **scaler_kwargs)
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        if not self.on_cpu:
            with super().optim_context(model):
                yield
            return
        target = getattr(getattr(model, 'module', model), 'backbone', model)
        forward = target.forward
        patched = 'forward' in vars(target)

        def autocast_forward(*args, **kwargs):
            with torch.autocast('cpu', dtype=self.cast_dtype):
                out = forward(*args, **kwargs)
            return apply_to(
                out, lambda x: isinstance(x, torch.Tensor) and x.dtype == self.
                cast_dtype, lambda x: x.float())

        # OptimWrapper's context: gradient accumulation, no autocast
        with OptimWrapper.optim_context(self, model):
            target.forward = autocast_forward
            try:
                yield
            finally:
                if patched:
                    target.forward = forward
                else:
                    del target.forward  # the class's forward again
