# RetinaNet RegionViT-s-w14, 1x schedule: retinanet_regionvit_s_coco.py with
# 14x14 windows. The ImageNet weights were trained with 7x7 windows; loading
# converts them to 14x14 (bicubic resize of the regional kernel and position
# tables).
_base_ = './retinanet_regionvit_s_coco.py'
model = dict(backbone=dict(arch='small_w14'))
