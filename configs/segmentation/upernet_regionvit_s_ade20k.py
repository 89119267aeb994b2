# UPerNet + auxiliary FCN head with a RegionViT-S backbone on ADE20K:
# 512x512 crops, 160k iterations, batch 16, AdamW 6e-5 (weight decay 0.01,
# none on norms and relative-position tables), poly decay after a 1500-iter
# linear warm-up, drop path 0.3 (the usual Swin-style UPerNet recipe).
#
# Test protocols (single scale, short side 512, is the default):
#   single scale: python tools/test.py CONFIG CKPT
#   multi-scale + flip: python tools/test.py CONFIG CKPT --tta
#     (mmseg's test.py wraps the model in ``tta_model`` (SegTTAModel, from
#     default_runtime) and swaps the test pipeline for ``tta_pipeline``
#     (_base_/datasets/ade20k_tta.py): ratios 0.5-1.75 of the 2048x512 test
#     scale, each also flipped)
#   ADE20K server PNGs: upernet_regionvit_s_ade20k_test-format.py
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    '../_base_/datasets/ade20k_tta.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
    '../_base_/regionvit.py',
]
model = dict(
    # The base preprocessor already normalises RGB with the ImageNet
    # mean/std the RegionViT weights were trained with; it only needs to
    # pad training batches to the crop size.
    data_preprocessor=dict(size={{_base_.crop_size}}),
    backbone=dict(
        _base_.regionvit_backbone, _delete_=True, drop_path_rate=0.3),
    # The base's in_channels ([96, 192, 384, 768], auxiliary head on stage 2
    # with 384) are RegionViT-S's; variants override them.
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))

# batch 16 = 8 GPUs x 2 images
train_dataloader = dict(batch_size=2)

optim_wrapper = dict(
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=6e-5,
        betas=(0.9, 0.999),
        weight_decay=0.01),
    # no weight decay on norms and relative-position tables
    paramwise_cfg=_base_.regionvit_paramwise_cfg)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=1500,
        end=160000,
        by_epoch=False),
]
auto_scale_lr = dict(base_batch_size=16)
