# RetinaNet on the demo data with the backbone's last three stages only
# (strides 8-32 for P3-P7, as in the official RetinaNet), tiny.
_base_ = '../../configs/detection/retinanet_regionvit_t_coco.py'

__size = _base_.regionvit_sizes.demo
model = dict(
    backbone=dict(__size.backbone, out_indices=(1, 2, 3)),
    neck=dict(in_channels=__size.channels[1:], out_channels=64, start_level=0),
    bbox_head=dict(num_classes=3, in_channels=64, feat_channels=64))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(96, 96), keep_ratio=True),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root='data/shapes/',
        metainfo=dict(classes=('circle', 'triangle', 'rectangle')),
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        pipeline=train_pipeline))
