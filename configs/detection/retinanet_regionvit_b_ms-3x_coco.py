# RetinaNet RegionViT-b, 3x multi-scale schedule (see
# retinanet_regionvit_s_ms-3x_coco.py).
_base_ = './retinanet_regionvit_s_ms-3x_coco.py'

pretrained = 'https://github.com/IBM/RegionViT/releases/download/weights-v0.1/RegionViT-B.pth'  # noqa: E501
model = dict(
    backbone=dict(
        arch='base', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
