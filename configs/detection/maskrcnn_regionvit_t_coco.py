# Mask R-CNN RegionViT-t, 1x schedule (see maskrcnn_regionvit_s_coco.py).
_base_ = './maskrcnn_regionvit_s_coco.py'

model = dict(
    backbone=dict(
        arch='tiny',
        init_cfg=dict(checkpoint=_base_.regionvit_release +
                      'RegionViT-Ti.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
