# Mask R-CNN RegionViT-b-w14-peg, 1x schedule: maskrcnn_regionvit_b_coco.py
# with 14x14 windows and PEG. The ImageNet weights were trained with 7x7
# windows; loading converts them to 14x14 (bicubic resize of the regional
# kernel and position tables).
_base_ = './maskrcnn_regionvit_b_coco.py'
model = dict(backbone=dict(arch='base_w14_peg'))
