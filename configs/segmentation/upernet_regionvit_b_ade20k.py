# UPerNet RegionViT-b on ADE20K (see upernet_regionvit_s_ade20k.py).
_base_ = './upernet_regionvit_s_ade20k.py'

model = dict(
    backbone=dict(
        arch='base',
        init_cfg=dict(checkpoint=_base_.regionvit_release +
                      'RegionViT-B.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
