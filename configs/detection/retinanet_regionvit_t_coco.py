# RetinaNet RegionViT-t, 1x schedule (see retinanet_regionvit_s_coco.py).
_base_ = './retinanet_regionvit_s_coco.py'

model = dict(
    backbone=dict(
        arch='tiny',
        init_cfg=dict(checkpoint=_base_.regionvit_release +
                      'RegionViT-Ti.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
