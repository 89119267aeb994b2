# RetinaNet RegionViT-t, 3x multi-scale schedule (see
# retinanet_regionvit_s_ms-3x_coco.py).
_base_ = './retinanet_regionvit_s_ms-3x_coco.py'

model = dict(
    backbone=dict(
        arch='tiny',
        init_cfg=dict(checkpoint=_base_.regionvit_release +
                      'RegionViT-Ti.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
