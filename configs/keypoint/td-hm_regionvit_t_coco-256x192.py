# Top-down heatmap pose, RegionViT-t, COCO 256x192 (see
# td-hm_regionvit_s_coco-256x192.py).
_base_ = './td-hm_regionvit_s_coco-256x192.py'
__size = _base_.regionvit_sizes.tiny
model = dict(
    backbone=__size.backbone, head=dict(in_channels=__size.channels[-1]))
