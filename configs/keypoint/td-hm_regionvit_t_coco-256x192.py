# Top-down heatmap pose, RegionViT-t, COCO 256x192 (see
# td-hm_regionvit_s_coco-256x192.py).
_base_ = './td-hm_regionvit_s_coco-256x192.py'

pretrained = 'https://github.com/IBM/RegionViT/releases/download/weights-v0.1/RegionViT-Ti.pth'  # noqa: E501
model = dict(
    backbone=dict(
        arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    head=dict(in_channels=512))
