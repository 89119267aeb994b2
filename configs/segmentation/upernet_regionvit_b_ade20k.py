# UPerNet RegionViT-b on ADE20K (see upernet_regionvit_s_ade20k.py).
_base_ = './upernet_regionvit_s_ade20k.py'
__size = _base_.regionvit_sizes.base
model = dict(
    backbone=__size.backbone,
    decode_head=dict(in_channels=__size.channels),
    auxiliary_head=dict(in_channels=__size.channels[2]))
