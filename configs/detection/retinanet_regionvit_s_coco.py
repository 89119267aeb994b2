# RetinaNet with FPN (P3-P7, P6 from C5), RegionViT-S backbone, 1x schedule:
# the official recipe (fixed 672x1120 resize, AdamW 1e-4, weight decay 0.05,
# batch 16, 12 epochs, drop path 0.2, detection norms on).
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/regionvit.py',
]
model = dict(
    # The official detectors normalise RGB images with mean and std listed
    # in BGR order (detectron2's defaults with INPUT.FORMAT RGB); the
    # converted COCO weights expect exactly this.
    data_preprocessor=dict(
        mean=[103.53, 116.28, 123.675],
        std=[57.375, 57.12, 58.395],
        bgr_to_rgb=True),
    backbone=dict(
        _base_.regionvit_backbone, _delete_=True, drop_path_rate=0.2),
    # detectron2's P7 is computed from ReLU(P6)
    neck=dict(in_channels=[96, 192, 384, 768], relu_before_extra_convs=True),
    # detectron2's inference (mmregionvit/models/retina_head.py,
    # detectron_boxes.py): its box deltas (dw, dh clamped from above only),
    # its NMS on unclipped boxes at the input scale, then final boxes
    # scaled and clipped to the output image with the empty ones dropped;
    # no small boxes are removed
    bbox_head=dict(
        type='mmregionvit.DetectronRetinaHead',
        bbox_coder=dict(
            _delete_=True,
            type='mmregionvit.DetectronDeltaXYWHBBoxCoder',
            clip_border=False)),
    test_cfg=dict(min_bbox_size=-1))

img_scale = (1120, 672)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
# detectron2's test input: the image read by Pillow, its short side resized
# to 672 unless the long side would pass 1120 (detectron2's rounding of the
# new size, which mmcv's Resize rounds differently for some sizes, e.g.
# 640x382), by Pillow's bilinear filter (which antialiases when shrinking;
# OpenCV's does not)
test_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        backend_args={{_base_.backend_args}}),
    dict(
        type='ResizeShortestEdge',
        scale=min(img_scale),
        max_size=max(img_scale),
        backend='pillow',
        interpolation='bilinear'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=1e-4,
        betas=(0.9, 0.999),
        weight_decay=0.05),
    # no weight decay on norms and relative-position tables
    paramwise_cfg=_base_.regionvit_paramwise_cfg)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=1000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=12,
        by_epoch=True,
        milestones=[8, 11],
        gamma=0.1),
]
auto_scale_lr = dict(base_batch_size=16)
