# The segmentation demo without random augmentation (see
# maskrcnn_demo_deterministic.py). The tests' images are smaller than the
# crop, so RandomCrop keeps them whole.
_base_ = '../../configs/segmentation/upernet_regionvit_demo_shapes.py'
custom_imports = dict(
    imports=['mmregionvit', 'dist_probe'], allow_failed_imports=False)
# SyncBuffersHook averages the BatchNorm statistics of the processes before
# a validation, so that every process evaluates the same model.
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='DistProbe')]
# Dropout draws from the global RNG, whose state at a batch differs between
# one process (after the previous batch) and two (each from the seed).
model = dict(
    decode_head=dict(dropout_ratio=0.0),
    auxiliary_head=dict(dropout_ratio=0.0))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomCrop', crop_size={{_base_.crop_size}}),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    sampler=dict(shuffle=False), dataset=dict(pipeline=train_pipeline))
