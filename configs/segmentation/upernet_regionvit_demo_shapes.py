# The segmentation demo: UPerNet RegionViT on the embedded synthetic
# "shapes" data (tools/make_demo_data.py: label maps 0 background,
# 1 circle, 2 triangle, 3 rectangle), small enough to train on a 2-core CPU
# in a few minutes. Only data, sizes and schedule differ from the real
# config.
_base_ = './upernet_regionvit_s_ade20k.py'

data_root = 'data/shapes/'
metainfo = dict(
    classes=('background', 'circle', 'triangle', 'rectangle'),
    palette=[(0, 0, 0), (220, 20, 60), (0, 160, 80), (30, 90, 230)])
crop_size = (128, 128)  # training crops of the 192x192 images
num_classes = len(metainfo['classes'])

__size = _base_.regionvit_sizes.demo
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=__size.backbone,
    decode_head=dict(
        in_channels=__size.channels, channels=32, num_classes=num_classes),
    auxiliary_head=dict(
        in_channels=__size.channels[2], channels=16, num_classes=num_classes))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    # crops where the background is at most 75% (as far as 10 tries allow)
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [  # whole 192x192 images
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
shapes_dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=metainfo,
    img_suffix='.png',
    seg_map_suffix='.png',
    reduce_zero_label=False)
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        shapes_dataset,
        data_prefix=dict(img_path='train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
# the training loader on val with the test pipeline
val_dataloader = dict(
    train_dataloader,
    dataset=dict(
        train_dataloader['dataset'],
        data_prefix=dict(img_path='val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# Many small steps: in a fixed CPU time the number of updates matters more
# than the batch. Background and circles are learnt first (about 33 mIoU at
# 1-3k iterations); telling triangles from rectangles takes far longer.
max_iters = 2000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(
        type='CosineAnnealingLR',
        by_epoch=False,
        begin=50,
        end=max_iters,
        eta_min=1e-5),
]
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
# the LR above is for batch 4 (--auto-scale-lr scales it from there)
auto_scale_lr = dict(enable=False, base_batch_size=4)
randomness = dict(seed=0)  # the same run, and figures, every time
