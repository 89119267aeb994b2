# The keypoint demo without random augmentation (see
# maskrcnn_demo_deterministic.py): no flip, no box shift or scaling.
_base_ = '../../configs/keypoint/td-hm_regionvit_demo_shapes.py'
custom_imports = dict(
    imports=['mmregionvit', 'dist_probe'], allow_failed_imports=False)
# SyncBuffersHook averages the BatchNorm statistics of the processes before
# a validation, so that every process evaluates the same model.
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='DistProbe')]
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(
        type='TopdownAffine',
        input_size={{_base_.codec.input_size}},
        use_udp=True),
    dict(type='GenerateTarget', encoder={{_base_.codec}}),
    dict(type='PackPoseInputs'),
]
train_dataloader = dict(
    sampler=dict(shuffle=False), dataset=dict(pipeline=train_pipeline))
