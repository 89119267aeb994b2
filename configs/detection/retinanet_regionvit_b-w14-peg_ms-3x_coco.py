# RetinaNet RegionViT-b-w14-peg, 3x multi-scale schedule:
# retinanet_regionvit_b_ms-3x_coco.py with 14x14 windows and PEG. The ImageNet
# weights were trained with 7x7 windows; loading converts them to 14x14
# (bicubic resize of the regional kernel and position tables).
_base_ = './retinanet_regionvit_b_ms-3x_coco.py'
model = dict(backbone=dict(arch='base_w14_peg'))
