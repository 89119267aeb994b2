# Semantic FPN with a RegionViT-S backbone on ADE20K, the usual protocol for
# comparing backbones (PVT, PoolFormer): 512x512 crops, 80k iterations,
# batch 16, AdamW 1e-4 with weight decay 1e-4 (none on norms and
# relative-position tables), poly decay (power 0.9) to zero, drop path 0.1.
# Single-scale test at short side 512 by default; multi-scale + flip with
# mmseg's ``tools/test.py --tta`` as for upernet_regionvit_s_ade20k.py.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    '../_base_/datasets/ade20k_tta.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    '../_base_/regionvit.py',
]
model = dict(
    # The base preprocessor already normalises RGB with the ImageNet
    # mean/std the RegionViT weights were trained with.
    data_preprocessor=dict(size={{_base_.crop_size}}),
    pretrained=None,
    backbone=dict(
        _base_.regionvit_backbone, _delete_=True, drop_path_rate=0.1),
    neck=dict(in_channels=[96, 192, 384, 768]),
    decode_head=dict(num_classes=150))

# batch 16 = 4 GPUs x 4 images (the base's batch_size); on 8 GPUs set
# train_dataloader.batch_size=2

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, weight_decay=1e-4),
    # no weight decay on norms and relative-position tables
    paramwise_cfg=_base_.regionvit_paramwise_cfg)
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=0.9,
        begin=0,
        end=80000,
        by_epoch=False),
]
auto_scale_lr = dict(base_batch_size=16)
