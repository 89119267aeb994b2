# UPerNet RegionViT-m on ADE20K (see upernet_regionvit_s_ade20k.py).
# Same channels as RegionViT-S, so the heads are unchanged.
_base_ = './upernet_regionvit_s_ade20k.py'

model = dict(
    backbone=dict(
        arch='medium',
        init_cfg=dict(checkpoint=_base_.regionvit_release +
                      'RegionViT-M.pth')))
