"""detectron2's ``Matcher`` as an mmdet assigner."""
import torch
from mmdet.models.task_modules.assigners import AssignResult, MaxIoUAssigner
from torch import Tensor

from ..registry import TASK_UTILS


@TASK_UTILS.register_module()
class DetectronMaxIoUAssigner(MaxIoUAssigner):
    """Assigns priors to ground truths as detectron2's ``Matcher`` does.

    A prior whose highest IoU with any ground truth is below ``neg_iou_thr``
    is negative, at or above ``pos_iou_thr`` positive, in between ignored.
    With ``allow_low_quality_matches`` every prior that reaches a ground
    truth's highest IoU (ties included) is positive too, however low that
    IoU is (mmdet asks for ``min_pos_iou``). Official quirk: such a prior
    keeps the ground truth it overlaps most, which need not be the one it
    was chosen for (mmdet reassigns it to that one).

    Args:
        pos_iou_thr: The upper IoU threshold (detectron2's
            ``IOU_THRESHOLDS[1]``).
        neg_iou_thr: The lower IoU threshold (``IOU_THRESHOLDS[0]``).
        allow_low_quality_matches: The ``Matcher`` argument of that name.
        iou_calculator: How IoUs are computed.
    """

    def __init__(
        self,
        pos_iou_thr: float,
        neg_iou_thr: float,
        allow_low_quality_matches: bool,
        iou_calculator: dict = dict(type='BboxOverlaps2D')
    ) -> None:
        super().__init__(
            pos_iou_thr=pos_iou_thr,
            neg_iou_thr=neg_iou_thr,
            min_pos_iou=0.0,
            match_low_quality=allow_low_quality_matches,
            iou_calculator=iou_calculator)

    def assign_wrt_overlaps(self, overlaps: Tensor,
                            gt_labels: Tensor) -> AssignResult:
        """Assign by ``overlaps`` of shape ``(num_gts, num_priors)``."""
        num_gts, num_priors = overlaps.shape
        if num_gts == 0 or num_priors == 0:
            return super().assign_wrt_overlaps(overlaps, gt_labels)
        max_overlaps, argmax_overlaps = overlaps.max(dim=0)
        gt_inds = overlaps.new_full((num_priors, ), -1, dtype=torch.long)
        gt_inds[max_overlaps < self.neg_iou_thr] = 0
        positive = max_overlaps >= self.pos_iou_thr
        if self.match_low_quality:
            best_for_a_gt = overlaps == overlaps.max(dim=1, keepdim=True)[0]
            positive |= best_for_a_gt.any(dim=0)
        gt_inds[positive] = argmax_overlaps[positive] + 1
        labels = gt_inds.new_full((num_priors, ), -1)
        labels[positive] = gt_labels[argmax_overlaps[positive]]
        return AssignResult(
            num_gts=num_gts,
            gt_inds=gt_inds,
            max_overlaps=max_overlaps,
            labels=labels)
