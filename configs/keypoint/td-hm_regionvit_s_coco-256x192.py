# Top-down heatmap pose estimation on COCO at 256x192 with a RegionViT-S
# backbone and a SimpleBaseline head (three 4x4 deconvolutions, 256
# channels, on the stride-32 stage: 8x6 -> 64x48 heatmaps). UDP codec and
# affine, flip test.
#
# Recipe (transformer backbone, as for mmpose's ViTPose configs but without
# layer decay): AdamW lr 5e-4, betas (0.9, 0.999), weight decay 0.05 (the
# RegionViT ImageNet value; none on norms and relative-position tables),
# gradient clipping at norm 1, 500-iteration linear warm-up, x0.1 at epochs
# 170 and 200 of 210, batch 512 = 8 GPUs x 64, drop path 0.1.
#
# 256x192 is no multiple of the 28-pixel regions: the backbone pads inside
# and crops its outputs back to 64x48, 32x24, 16x12 and 8x6.
# Test-server results: td-hm_regionvit_s_coco-256x192_test-format.py.
_base_ = ['mmpose::_base_/default_runtime.py', '../_base_/regionvit.py']
# runtime; mmpose's visualizer with OpenCV keypoint drawing that works
# under NumPy >= 2.4
visualizer = dict(type='mmregionvit.PoseLocalVisualizer')
train_cfg = dict(max_epochs=210, val_interval=10)
default_hooks = dict(checkpoint=dict(save_best='coco/AP', rule='greater'))

# optimizer and schedule
optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.05),
    # no weight decay on norms and relative-position tables
    paramwise_cfg=_base_.regionvit_paramwise_cfg,
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(
        type='LinearLR', begin=0, end=500, start_factor=0.001, by_epoch=False),
    dict(
        type='MultiStepLR',
        begin=0,
        end=210,
        milestones=[170, 200],
        gamma=0.1,
        by_epoch=True),
]
auto_scale_lr = dict(base_batch_size=512)

# codec: unbiased data processing, heatmaps at stride 4
codec = dict(
    type='UDPHeatmap', input_size=(192, 256), heatmap_size=(48, 64), sigma=2)

model = dict(
    type='TopdownPoseEstimator',
    # RGB with the ImageNet mean/std of the RegionViT weights
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        _base_.regionvit_backbone, out_indices=(3, ), drop_path_rate=0.1),
    head=dict(
        type='HeatmapHead',
        in_channels=768,
        out_channels=17,
        loss=dict(type='KeypointMSELoss', use_target_weight=True),
        decoder=codec),
    # UDP heatmaps need no shift after flipping
    test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=False))

# data
dataset_type = 'CocoDataset'
data_mode = 'topdown'
data_root = 'data/coco/'

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomHalfBody'),
    dict(type='RandomBBoxTransform'),
    dict(type='TopdownAffine', input_size=codec['input_size'], use_udp=True),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size'], use_udp=True),
    dict(type='PackPoseInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/person_keypoints_train2017.json',
        data_prefix=dict(img='train2017/'),
        pipeline=train_pipeline))
# person boxes of the usual detector (56.4 AP on val2017)
val_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/person_keypoints_val2017.json',
        bbox_file=data_root + 'person_detection_results/'
        'COCO_val2017_detections_AP_H_56_person.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=val_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/person_keypoints_val2017.json')
test_evaluator = val_evaluator
