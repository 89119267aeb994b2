# Mask R-CNN RegionViT-m, 1x schedule (see maskrcnn_regionvit_s_coco.py).
_base_ = './maskrcnn_regionvit_s_coco.py'

model = dict(
    backbone=dict(
        arch='medium',
        init_cfg=dict(checkpoint=_base_.regionvit_release +
                      'RegionViT-M.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
