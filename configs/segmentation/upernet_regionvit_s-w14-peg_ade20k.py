# UPerNet RegionViT-s-w14-peg on ADE20K: upernet_regionvit_s_ade20k.py with
# 14x14 windows and PEG. Loads the 7x7-window RegionViT-S ImageNet weights:
# the loader converts them to 14x14 windows, and the PEG convolutions start
# at zero.
_base_ = './upernet_regionvit_s_ade20k.py'
model = dict(backbone=dict(arch='small_w14_peg'))
