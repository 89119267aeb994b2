# RetinaNet RegionViT-s-w14-peg,
# 1x schedule (see retinanet_regionvit_s_coco.py).
# The ImageNet weights were trained with 7x7 windows; loading converts them
# to 14x14 (bicubic resize of the regional kernel and position tables).
_base_ = './retinanet_regionvit_s_coco.py'

pretrained = 'https://github.com/IBM/RegionViT/releases/download/weights-v0.1/RegionViT-S.pth'  # noqa: E501
model = dict(
    backbone=dict(
        arch='small_w14_peg',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
