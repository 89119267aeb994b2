# UPerNet RegionViT-m on ADE20K (see upernet_regionvit_s_ade20k.py).
# Same channels as RegionViT-S, so the heads are unchanged.
_base_ = './upernet_regionvit_s_ade20k.py'
model = dict(backbone=_base_.regionvit_sizes.medium.backbone)
