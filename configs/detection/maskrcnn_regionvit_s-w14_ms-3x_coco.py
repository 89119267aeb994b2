# Mask R-CNN RegionViT-s-w14, 3x multi-scale schedule (see
# maskrcnn_regionvit_s_ms-3x_coco.py).
_base_ = './maskrcnn_regionvit_s_ms-3x_coco.py'

model = dict(
    backbone=dict(
        arch='small_w14',
        init_cfg=dict(checkpoint=_base_.regionvit_release +
                      'RegionViT-S.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
