"""Mixed-precision inference: a model's ``test_step`` under autocast, its
post-processing in float32.

Autocast runs the backbone, the neck and the heads' layers in bfloat16 on
a CPU, float16 or bfloat16 on a GPU. The steps :func:`float32_steps` lists
run with autocast off, on float32 copies of their tensor arguments: mmcv's
CPU RoIAlign takes no bfloat16, numpy (keypoint decoding) has none, and box
decoding, NMS, mask pasting and the resizing of label scores to the image
keep float32's accuracy.
"""
import argparse
from functools import wraps
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.utils import apply_to

# the dtypes autocast may run a model in, by name on the command line
DTYPES: Dict[str, torch.dtype] = dict(bf16=torch.bfloat16, fp16=torch.float16)


def add_amp_argument(parser: argparse.ArgumentParser) -> None:
    """The tools' ``--amp [DTYPE]`` (see :func:`inference_dtype`)."""
    parser.add_argument(
        '--amp',
        nargs='?',
        const='auto',
        choices=['auto', *sorted(DTYPES)],
        metavar='DTYPE',
        help='run the model under autocast: bfloat16 on a CPU, float16 on '
        'a GPU, or the DTYPE given (bf16, fp16); post-processing stays '
        'float32')


def inference_dtype(amp: Optional[str], backend: str,
                    device_type: str) -> Optional[torch.dtype]:
    """The autocast dtype of the tools' ``--amp [DTYPE]`` on ``device_type``
    (``amp`` is ``'auto'`` for a bare ``--amp``, ``None`` without it):
    float16 on a GPU and bfloat16 on a CPU unless ``amp`` names one.

    Raises ``ValueError`` for float16 on a CPU (bfloat16 there, as in
    mmengine's autocast: it keeps float32's range) and for an exported
    file (``backend`` not ``'pytorch'``), which its runtime runs at its own
    precision.
    """
    if amp is None:
        return None
    if backend != 'pytorch':
        raise ValueError(f'--amp runs the PyTorch model under autocast; '
                         f'--backend {backend} runs the exported file at its '
                         'own precision: leave out --amp')
    if amp == 'auto':
        return torch.bfloat16 if device_type == 'cpu' else torch.float16
    if device_type == 'cpu' and amp != 'bf16':
        raise ValueError(f'--amp {amp} is for GPUs; on a CPU give --amp or '
                         '--amp bf16 (bfloat16)')
    return DTYPES[amp]


def float32_steps() -> List[Tuple[type, str]]:
    """(class, method) of the steps that run in float32 under autocast, of
    the libraries installed (our heads subclass these classes)."""
    steps = []
    try:
        from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
        from mmdet.models.roi_heads.bbox_heads import BBoxHead
        from mmdet.models.roi_heads.mask_heads import FCNMaskHead
        from mmdet.models.roi_heads.roi_extractors import BaseRoIExtractor
        steps += [
            (BaseDenseHead, 'predict_by_feat'),  # box decoding, NMS
            (BaseRoIExtractor, 'forward'),  # RoIAlign
            (BBoxHead, 'predict_by_feat'),  # box decoding, NMS
            (FCNMaskHead, 'predict_by_feat'),  # mask pasting
        ]
    except ImportError:
        pass
    try:
        from mmseg.models.decode_heads.decode_head import BaseDecodeHead
        from mmseg.models.segmentors.base import BaseSegmentor
        steps += [
            (BaseDecodeHead, 'predict_by_feat'),  # resize to the input
            (BaseSegmentor, 'postprocess_result'),  # to the image, argmax
        ]
    except ImportError:
        pass
    try:
        from mmpose.models.heads.base_head import BaseHead
        steps.append((BaseHead, 'decode'))  # heatmaps to keypoints (numpy)
    except ImportError:
        pass
    return steps


def _is_half(x) -> bool:
    return isinstance(x, torch.Tensor) and x.dtype in DTYPES.values()


def in_float32(method: Callable, device_type: str) -> Callable:
    """``method`` with autocast off and float32 copies of its half-precision
    tensor arguments (also inside lists, tuples and dicts)."""

    @wraps(method)
    def run(*args, **kwargs):
        args, kwargs = apply_to((args, kwargs), _is_half, lambda x: x.float())
        with torch.autocast(device_type, enabled=False):
            return method(*args, **kwargs)

    return run


def autocast_inference(model: nn.Module, device_type: str,
                       dtype: torch.dtype) -> nn.Module:
    """Make ``model.test_step`` run under ``dtype`` autocast on
    ``device_type`` and the :func:`float32_steps` of its modules in float32
    (their instances patched, the classes left as they are)."""
    steps = float32_steps()
    for module in model.modules():
        for cls, name in steps:
            if isinstance(module, cls):
                setattr(module, name,
                        in_float32(getattr(module, name), device_type))
    test_step = model.test_step

    @wraps(test_step)
    def autocast_test_step(*args, **kwargs):
        with torch.autocast(device_type, dtype=dtype):
            return test_step(*args, **kwargs)

    model.test_step = autocast_test_step
    return model
