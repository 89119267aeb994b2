# RetinaNet RegionViT-b, 1x schedule (see retinanet_regionvit_s_coco.py).
_base_ = './retinanet_regionvit_s_coco.py'
__size = _base_.regionvit_sizes.base
model = dict(backbone=__size.backbone, neck=dict(in_channels=__size.channels))
