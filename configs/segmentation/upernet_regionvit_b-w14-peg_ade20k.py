# UPerNet RegionViT-b-w14-peg on ADE20K (see upernet_regionvit_s_ade20k.py).
# Loads the 7x7-window RegionViT-B ImageNet weights: the loader converts
# them to 14x14 windows, and the PEG convolutions start at zero.
_base_ = './upernet_regionvit_s_ade20k.py'

model = dict(
    backbone=dict(
        arch='base_w14_peg',
        init_cfg=dict(checkpoint=_base_.regionvit_release +
                      'RegionViT-B.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
