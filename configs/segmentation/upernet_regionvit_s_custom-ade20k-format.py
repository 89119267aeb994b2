# UPerNet RegionViT-S trained on a segmentation dataset of your own in
# ADE20K's format: images and PNG label maps of the same names (one class
# index per pixel) in folders of their own (docs/custom_data.md has the
# commands). Set the lines down to `load_from`; the rest follows from them,
# and everything not here is the ADE20K S config.
_base_ = './upernet_regionvit_s_ade20k.py'

data_root = 'data/shapes/'  # what tools/make_demo_data.py makes
train_img_dir, train_ann_dir = 'train', 'ann_dir/train'
val_img_dir, val_ann_dir = 'val', 'ann_dir/val'
img_suffix, seg_map_suffix = '.png', '.png'
# ADE20K itself: images/training, annotations/training, '.jpg', and
# label 0 is "unlabelled": reduce_zero_label = True drops it, so that
# label 1 becomes classes[0]
reduce_zero_label = False
# one name per label value (after reduce_zero_label)
classes = ('background', 'circle', 'triangle', 'rectangle')
# None: the backbone starts from the ImageNet weights; a segmentor of
# ours trained on other classes also loads, less its classifiers
load_from = None
max_iters = 8000
val_interval = 800

metainfo = dict(classes=classes)
num_classes = len(classes)
model = dict(
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=dict(num_classes=num_classes))
custom_hooks = [
    dict(
        type='mmregionvit.NewClassesHook',
        predictors=['decode_head.conv_seg', 'auxiliary_head.conv_seg'])
]

crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=reduce_zero_label),
    dict(
        type='RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=reduce_zero_label),
    dict(type='PackSegInputs')
]
dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=metainfo,
    img_suffix=img_suffix,
    seg_map_suffix=seg_map_suffix,
    reduce_zero_label=reduce_zero_label)
train_dataloader = dict(
    dataset=dict(
        dataset,
        data_prefix=dict(img_path=train_img_dir, seg_map_path=train_ann_dir),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        dataset,
        data_prefix=dict(img_path=val_img_dir, seg_map_path=val_ann_dir),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# A short schedule, evaluated every `val_interval` iterations; the learning
# rate is the ADE20K one for a batch of 16 (--auto-scale-lr scales it).
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=500,
        end=max_iters,
        by_epoch=False),
]
default_hooks = dict(
    checkpoint=dict(interval=val_interval, max_keep_ckpts=2, save_best='mIoU'))
