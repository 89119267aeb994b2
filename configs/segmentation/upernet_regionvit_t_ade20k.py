# UPerNet RegionViT-t on ADE20K (see upernet_regionvit_s_ade20k.py);
# drop path 0.2 for the smaller model.
_base_ = './upernet_regionvit_s_ade20k.py'

pretrained = 'https://github.com/IBM/RegionViT/releases/download/weights-v0.1/RegionViT-Ti.pth'  # noqa: E501
model = dict(
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
