# Mask R-CNN RegionViT-m, 1x schedule (see maskrcnn_regionvit_s_coco.py).
_base_ = './maskrcnn_regionvit_s_coco.py'

pretrained = 'https://github.com/IBM/RegionViT/releases/download/weights-v0.1/RegionViT-M.pth'  # noqa: E501
model = dict(
    backbone=dict(
        arch='medium', init_cfg=dict(type='Pretrained',
                                     checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
