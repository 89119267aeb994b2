# RetinaNet RegionViT-m, 3x multi-scale schedule (see
# retinanet_regionvit_s_ms-3x_coco.py).
_base_ = './retinanet_regionvit_s_ms-3x_coco.py'

model = dict(
    backbone=dict(
        arch='medium',
        init_cfg=dict(checkpoint=_base_.regionvit_release +
                      'RegionViT-M.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
