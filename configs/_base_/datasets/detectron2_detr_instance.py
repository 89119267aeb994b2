# COCO instances under the official AUG_MODE "DETR" (the 3x multi-scale
# recipe, *_3x_ms.yaml), which the official detectron2 fork defines
# (build_augmentation): each training image either gets its shorter side
# resized to one of 480-896 (step 32, long side at most 1120), or to one of
# 400/500/600 (no limit), a random 384-600 crop, and then the 480-896
# resize; then the flip. PIL's bilinear resize throughout. The boxes are
# then recomputed from the polygon masks (the fork's recompute_boxes) and
# empty ones dropped (filter_empty_instances). Testing keeps the aspect
# ratio: shorter side 672, long side at most 1120.
_base_ = './detectron2_fixed_instance.py'

train_sizes = list(range(480, 897, 32))
max_size = 1120
# the resize to one of train_sizes, alone or after the random crop
__resize = dict(
    type='RandomChoiceResize',
    scales=train_sizes,
    resize_type='ResizeShortestEdge',
    max_size=max_size,
    backend='pillow')
# the FIXED pipeline's loading (image, boxes and polygon masks), then
train_pipeline = _base_.train_pipeline[:2] + [
    dict(
        type='RandomChoice',
        transforms=[
            [__resize],
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
                __resize,
            ],
        ]),
    dict(type='RandomFlip', prob=0.5),
    dict(type='mmregionvit.BoxesFromMasks'),
    dict(
        type='FilterAnnotations',
        min_gt_bbox_wh=(1e-5, 1e-5),
        keep_empty=False),
    dict(type='PackDetInputs'),
]
# detectron2's test input as under FIXED (detectron2_fixed_instance.py),
# but (AUG_MODE "DETR" has no test transform) detectron2's shorter-side
# resize
test_pipeline = [
    dict(
        type='ResizeShortestEdge',
        scale=672,
        max_size=max_size,
        backend='pillow') if t.type == 'mmregionvit.FixedOrientedResize' else t
    for t in _base_.test_pipeline
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
