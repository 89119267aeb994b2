# Mask R-CNN RegionViT-t, 3x multi-scale schedule (see
# maskrcnn_regionvit_s_ms-3x_coco.py).
_base_ = './maskrcnn_regionvit_s_ms-3x_coco.py'

model = dict(
    backbone=dict(
        arch='tiny',
        init_cfg=dict(checkpoint=_base_.regionvit_release +
                      'RegionViT-Ti.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
