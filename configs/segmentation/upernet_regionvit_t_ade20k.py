# UPerNet RegionViT-t on ADE20K (see upernet_regionvit_s_ade20k.py);
# drop path 0.2 for the smaller model.
_base_ = './upernet_regionvit_s_ade20k.py'
__size = _base_.regionvit_sizes.tiny
model = dict(
    backbone=dict(__size.backbone, drop_path_rate=0.2),
    decode_head=dict(in_channels=__size.channels),
    auxiliary_head=dict(in_channels=__size.channels[2]))
