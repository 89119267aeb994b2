# COCO instances under the official AUG_MODE "FIXED", in training and
# testing: every image is resized to 672x1120 (portrait ones to 1120x672)
# without keeping its aspect ratio, by PIL's bilinear resize as in
# detectron2. Masks stay polygons (detectron2's INPUT.MASK_FORMAT
# "polygon"): mask targets are rasterised from the polygons inside each RoI.
_base_ = 'mmdet::_base_/datasets/coco_instance.py'

img_scale = (1120, 672)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(
        type='LoadAnnotations',
        with_bbox=True,
        with_mask=True,
        poly2mask=False),
    dict(
        type='mmregionvit.FixedOrientedResize',
        scale=img_scale,
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
# detectron2's test input: the image read by Pillow, then the official
# FIXED resize as in training (the fork's build_augmentation applies
# AUG_MODE to testing too)
test_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        backend_args={{_base_.backend_args}}),
    dict(
        type='mmregionvit.FixedOrientedResize',
        scale=img_scale,
        backend='pillow'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
# detectron2's training sampler is an endless shuffled stream
train_dataloader = dict(
    sampler=dict(type='InfiniteSampler'),
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
