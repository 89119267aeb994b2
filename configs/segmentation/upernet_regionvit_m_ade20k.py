# UPerNet RegionViT-m on ADE20K (see upernet_regionvit_s_ade20k.py).
# Same channels as RegionViT-S, so the heads are unchanged.
_base_ = './upernet_regionvit_s_ade20k.py'

pretrained = 'https://github.com/IBM/RegionViT/releases/download/weights-v0.1/RegionViT-M.pth'  # noqa: E501
model = dict(
    backbone=dict(
        arch='medium', init_cfg=dict(type='Pretrained',
                                     checkpoint=pretrained)))
