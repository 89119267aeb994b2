# Top-down heatmap pose, RegionViT-t, COCO 256x192 (see
# td-hm_regionvit_s_coco-256x192.py).
_base_ = './td-hm_regionvit_s_coco-256x192.py'

model = dict(
    backbone=dict(
        arch='tiny',
        init_cfg=dict(checkpoint=_base_.regionvit_release +
                      'RegionViT-Ti.pth')),
    head=dict(in_channels=512))
