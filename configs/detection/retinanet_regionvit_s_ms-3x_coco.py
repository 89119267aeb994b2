# RetinaNet RegionViT-S, 3x multi-scale schedule: the official
# retinanet_regionvit_FPN_3x_ms.yaml, whose AUG_MODE "DETR" the official
# detectron2 fork defines (build_augmentation): each training image either
# gets its shorter side resized to one of 480-896 (step 32, long side at most
# 1120), or to one of 400/500/600 (no limit), a random 384-600 crop, and
# then the 480-896 resize; then the flip. PIL's bilinear resize throughout.
# Boxes are clipped to the crop and empty ones dropped
# (filter_empty_instances). The fork also asks to recompute boxes from masks
# in this mode, which RetinaNet has none of (its DatasetMapper refuses that
# combination), so the code of the official RetinaNet 3x runs is not
# public. Testing keeps the aspect ratio: shorter side 672, long side at
# most 1120. 270k iterations at batch 16, steps at 210k and 250k.
_base_ = './retinanet_regionvit_s_coco.py'

train_sizes = list(range(480, 897, 32))
max_size = 1120
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='RandomChoice',
        transforms=[
            [
                dict(
                    type='RandomChoiceResize',
                    scales=train_sizes,
                    resize_type='ResizeShortestEdge',
                    max_size=max_size,
                    backend='pillow'),
            ],
            [
                dict(
                    type='RandomChoiceResize',
                    scales=[400, 500, 600],
                    resize_type='ResizeShortestEdge',
                    backend='pillow'),
                dict(
                    type='RandomCrop',
                    crop_type='absolute_range',
                    crop_size=(384, 600),
                    allow_negative_crop=True),
                dict(
                    type='RandomChoiceResize',
                    scales=train_sizes,
                    resize_type='ResizeShortestEdge',
                    max_size=max_size,
                    backend='pillow'),
            ],
        ]),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='FilterAnnotations',
        min_gt_bbox_wh=(1e-5, 1e-5),
        keep_empty=False),
    dict(type='PackDetInputs'),
]
# detectron2's test input: the image read by Pillow, then (AUG_MODE
# "DETR" has no test transform) detectron2's shorter-side resize
test_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        backend_args={{_base_.backend_args}}),
    dict(
        type='ResizeShortestEdge',
        scale=672,
        max_size=max_size,
        backend='pillow'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 270000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=1001),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[210000, 250000],
        gamma=0.1),
]
