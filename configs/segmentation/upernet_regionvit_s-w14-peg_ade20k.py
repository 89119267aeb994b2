# UPerNet RegionViT-s-w14-peg on ADE20K (see upernet_regionvit_s_ade20k.py).
# Loads the 7x7-window RegionViT-S ImageNet weights: the loader converts
# them to 14x14 windows, and the PEG convolutions start at zero.
# Same channels as RegionViT-S, so the heads are unchanged.
_base_ = './upernet_regionvit_s_ade20k.py'

model = dict(
    backbone=dict(
        arch='small_w14_peg',
        init_cfg=dict(checkpoint=_base_.regionvit_release +
                      'RegionViT-S.pth')))
