# RetinaNet RegionViT-b-w14, 1x schedule (see retinanet_regionvit_s_coco.py).
# The ImageNet weights were trained with 7x7 windows; loading converts them
# to 14x14 (bicubic resize of the regional kernel and position tables).
_base_ = './retinanet_regionvit_s_coco.py'

model = dict(
    backbone=dict(
        arch='base_w14',
        init_cfg=dict(checkpoint=_base_.regionvit_release +
                      'RegionViT-B.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
