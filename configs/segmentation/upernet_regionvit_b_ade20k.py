# UPerNet RegionViT-b on ADE20K (see upernet_regionvit_s_ade20k.py).
_base_ = './upernet_regionvit_s_ade20k.py'

pretrained = 'https://github.com/IBM/RegionViT/releases/download/weights-v0.1/RegionViT-B.pth'  # noqa: E501
model = dict(
    backbone=dict(
        arch='base', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
