# Mask R-CNN RegionViT-S, 3x multi-scale schedule: the official
# mask_rcnn_regionvit_FPN_3x_ms.yaml, the 1x recipe
# (maskrcnn_regionvit_s_coco.py) under AUG_MODE "DETR"
# (_base_/datasets/detectron2_detr_instance.py) for 270k iterations.
_base_ = [
    '../_base_/models/detectron2_mask-rcnn.py',
    '../_base_/datasets/detectron2_detr_instance.py',
    '../_base_/schedules/detectron2_3x.py',
]
model = dict(
    backbone=dict(
        _base_.regionvit_backbone, _delete_=True, drop_path_rate=0.2),
    neck=dict(in_channels=[96, 192, 384, 768]))
