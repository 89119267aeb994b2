# The demo detector with every random choice of training taken out, so that
# two processes and one process that sees the same images compute the same
# losses and gradients; DistProbe records them (tests/dist_probe.py).
_base_ = '../../configs/detection/maskrcnn_regionvit_demo_shapes.py'
custom_imports = dict(
    imports=['mmregionvit', 'dist_probe'], allow_failed_imports=False)
custom_hooks = [dict(type='DistProbe')]

# RandomSampler draws anchors and RoIs from the global RNG, whose state at
# an image differs between one process (after the previous image) and two
# (each from the seed): PseudoSampler takes every assigned one instead.
model = dict(
    train_cfg=dict(
        rpn=dict(sampler=dict(_delete_=True, type='PseudoSampler')),
        rcnn=dict(sampler=dict(_delete_=True, type='PseudoSampler'))))
# small images, no random flip
img_scale = (96, 96)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='PackDetInputs'),
]
# the images in file order: process r of n takes images r, r + n, ...
train_dataloader = dict(
    sampler=dict(shuffle=False), dataset=dict(pipeline=train_pipeline))
