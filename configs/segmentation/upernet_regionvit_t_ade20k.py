# UPerNet RegionViT-t on ADE20K (see upernet_regionvit_s_ade20k.py);
# drop path 0.2 for the smaller model.
_base_ = './upernet_regionvit_s_ade20k.py'

model = dict(
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.2,
        init_cfg=dict(checkpoint=_base_.regionvit_release +
                      'RegionViT-Ti.pth')),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
