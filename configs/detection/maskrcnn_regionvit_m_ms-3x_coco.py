# Mask R-CNN RegionViT-m, 3x multi-scale schedule (see
# maskrcnn_regionvit_s_ms-3x_coco.py).
_base_ = './maskrcnn_regionvit_s_ms-3x_coco.py'
__size = _base_.regionvit_sizes.medium
model = dict(backbone=__size.backbone, neck=dict(in_channels=__size.channels))
