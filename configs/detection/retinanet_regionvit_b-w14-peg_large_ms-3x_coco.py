# RetinaNet RegionViT-B+ (w/ PEG) with larger inputs (the official model
# zoo's "dagger" row), 3x multi-scale schedule: the official
# retinanet_regionvit_FPN_3x_ms_large.yaml, i.e. the 3x recipe
# (retinanet_regionvit_s_ms-3x_coco.py) with the long side of training images
# at most 1344 (MAX_SIZE_TRAIN) and testing at shorter side 896, long side at
# most 1344 (MIN_SIZE_TEST, MAX_SIZE_TEST).
# The official retinanet_regionvit_FPN_3x_ms_large.yaml names a base,
# retinanet_regionvit_FPN_3x.yaml, that was not released; as the Mask
# R-CNN one names mask_rcnn_regionvit_FPN_3x_ms.yaml, its base is taken
# to be retinanet_regionvit_FPN_3x_ms.yaml.
_base_ = './retinanet_regionvit_b-w14-peg_ms-3x_coco.py'

train_sizes = list(range(480, 897, 32))
max_size = 1344
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
        scale=896,
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
