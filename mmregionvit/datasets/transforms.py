"""Data transforms of the official detectron2 training recipe."""
from typing import Tuple

from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import Resize

from ..registry import TRANSFORMS


@TRANSFORMS.register_module()
class FixedOrientedResize(BaseTransform):
    """Resize to a fixed size regardless of the aspect ratio, the long side
    along the image's long side.

    The official ``AUG_MODE: "FIXED"`` (``T.Resize((MIN_SIZE, MAX_SIZE),
    mode=2)`` in the official detectron2 fork), in training and testing:
    landscape and square images become ``scale`` (w, h), portrait ones its
    transpose.

    Args:
        scale: (w, h) of the landscape output, e.g. (1120, 672).
        **resize_kwargs: More arguments of mmdet's ``Resize`` (e.g.
            ``backend``).
    """

    def __init__(self, scale: Tuple[int, int], **resize_kwargs) -> None:
        super().__init__()
        self.scale = tuple(scale)
        self.resize = Resize(scale=self.scale, **resize_kwargs)
        if self.resize.keep_ratio:
            raise ValueError('FixedOrientedResize resizes to a fixed size; '
                             'remove keep_ratio=True.')

    def transform(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        self.resize.scale = self.scale[::-1] if h > w else self.scale
        return self.resize(results)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(scale={self.scale}, ' \
            f'backend={self.resize.backend})'


@TRANSFORMS.register_module()
class BoxesFromMasks(BaseTransform):
    """Replace the ground-truth boxes by the tight boxes of their masks.

    detectron2's ``DatasetMapper`` with ``recompute_boxes`` (the official
    fork sets it for ``AUG_MODE: "DETR"``): after cropping, a box should
    bound what is left of its object, not the cropped old box.
    """

    def transform(self, results: dict) -> dict:
        boxes = results['gt_bboxes']
        results['gt_bboxes'] = results['gt_masks'].get_bboxes(type(boxes))
        return results
