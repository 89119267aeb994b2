# The demo: Mask R-CNN RegionViT on the embedded synthetic "shapes" data
# (tools/make_demo_data.py), small enough to train on a 2-core CPU in a few
# minutes. Only data, sizes and schedule differ from the real config.
_base_ = './maskrcnn_regionvit_s_coco.py'

data_root = 'data/shapes/'
metainfo = dict(
    classes=('circle', 'triangle', 'rectangle'),
    palette=[(220, 20, 60), (0, 160, 80), (30, 90, 230)])
img_scale = (192, 192)
num_classes = len(metainfo['classes'])

__size = _base_.regionvit_sizes.demo
model = dict(
    backbone=__size.backbone,
    neck=dict(in_channels=__size.channels, out_channels=64),
    rpn_head=dict(
        in_channels=64, feat_channels=64, anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(
            in_channels=64, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=64),
        mask_head=dict(
            num_convs=2,
            in_channels=64,
            conv_out_channels=64,
            num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
# reading and resizing as in training, then the base's annotations and
# packing
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
] + _base_.test_pipeline[2:]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        pipeline=train_pipeline))
# the training loader on val/ with the test pipeline
val_dataloader = dict(
    train_dataloader,
    dataset=dict(
        train_dataloader['dataset'],
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# counted in iterations, as the base's
max_iters = 1100
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(
        type='CosineAnnealingLR',
        by_epoch=False,
        begin=100,
        end=max_iters,
        eta_min=1e-5),
]
default_hooks = dict(
    logger=dict(interval=25), checkpoint=dict(interval=500, max_keep_ckpts=2))
# the LR above is for batch 4 (--auto-scale-lr scales it from there)
auto_scale_lr = dict(enable=False, base_batch_size=4)
randomness = dict(seed=0)  # the same run, and figures, every time
