# Mask R-CNN RegionViT-b-w14-peg, 3x multi-scale schedule (see
# maskrcnn_regionvit_s_ms-3x_coco.py).
_base_ = './maskrcnn_regionvit_s_ms-3x_coco.py'

model = dict(
    backbone=dict(
        arch='base_w14_peg',
        init_cfg=dict(checkpoint=_base_.regionvit_release +
                      'RegionViT-B.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
