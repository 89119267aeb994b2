# Mask R-CNN RegionViT-S, 3x multi-scale schedule: the official
# mask_rcnn_regionvit_FPN_3x_ms.yaml, the 1x recipe
# (maskrcnn_regionvit_s_coco.py) under AUG_MODE "DETR"
# (_base_/datasets/detectron2_detr_instance.py) for 270k iterations.
_base_ = [
    '../_base_/models/detectron2_mask-rcnn.py',
    '../_base_/datasets/detectron2_detr_instance.py',
    '../_base_/schedules/detectron2_3x.py',
]
# detectron2's weight decay groups, as the official detectors train
optim_wrapper = dict(paramwise_cfg=_base_.regionvit_detectron2_paramwise_cfg)
