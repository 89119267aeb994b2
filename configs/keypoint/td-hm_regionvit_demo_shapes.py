# The keypoint demo: top-down heatmaps with RegionViT on the embedded
# synthetic "shapes" data (tools/make_demo_data.py: one instance per shape,
# keypoints at its top/right/bottom/left extreme vertices), small enough to
# train on a 2-core CPU in a few minutes. Only data, sizes and schedule
# differ from the real config.
_base_ = './td-hm_regionvit_s_coco-256x192.py'

data_root = 'data/shapes/'
# next to this file whatever the working directory
metainfo = dict(from_file='{{ fileDirname }}/shapes_keypoints_info.py')

# the shapes are about square: 96x96 crops, heatmaps at stride 4
codec = dict(
    type='UDPHeatmap', input_size=(96, 96), heatmap_size=(24, 24), sigma=2)

__size = _base_.regionvit_sizes.demo
model = dict(
    backbone=__size.backbone,
    head=dict(
        in_channels=__size.channels[-1],
        out_channels=4,
        deconv_out_channels=(128, 128, 128),
        decoder=codec))

# No rotation (top/right/bottom/left are defined in image axes) and no
# half-body crops.
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomBBoxTransform', rotate_prob=0.0),
    dict(type='TopdownAffine', input_size=codec['input_size'], use_udp=True),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
# the base's, at this codec's input size
val_pipeline = [
    dict(t, input_size=codec['input_size']) if t.type == 'TopdownAffine' else t
    for t in _base_.val_pipeline
]
train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/keypoints_train.json',
        data_prefix=dict(img='train/'),
        pipeline=train_pipeline))
# the training loader on val/ with the test pipeline
val_dataloader = dict(
    train_dataloader,
    dataset=dict(
        train_dataloader['dataset'],
        ann_file='annotations/keypoints_val.json',
        bbox_file=None,  # ground-truth boxes
        data_prefix=dict(img='val/'),
        pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/keypoints_val.json')
test_evaluator = val_evaluator

# 32 instances a batch: 0.57-0.60 AP on val after 500 iterations (batch 16
# reached only 0.40 after 600)
max_iters = 500
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
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
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
# the LR above is for batch 32 (--auto-scale-lr scales it from there)
auto_scale_lr = dict(enable=False, base_batch_size=32)
randomness = dict(seed=0)  # the same run, and figures, every time
