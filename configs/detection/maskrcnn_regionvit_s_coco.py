# Mask R-CNN with FPN, RegionViT-S backbone, 1x schedule: the official
# recipe (detection/configs/mask_rcnn_regionvit_FPN_1x.yaml on detectron2's
# defaults, as the official detectron2 fork and main_detection.py train it):
# 672x1120 inputs, AdamW 1e-4, detectron2's weight decay groups, batch 16,
# 90k iterations, drop path 0.2, detection norms on.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/regionvit.py',
]
model = dict(
    # The official detectors normalise RGB images with mean and std listed
    # in BGR order (detectron2's defaults with INPUT.FORMAT RGB); the
    # converted COCO weights expect exactly this.
    data_preprocessor=dict(
        mean=[103.53, 116.28, 123.675],
        std=[57.375, 57.12, 58.395],
        bgr_to_rgb=True),
    backbone=dict(
        _base_.regionvit_backbone, _delete_=True, drop_path_rate=0.2),
    # detectron2's FPN initialises its convs with c2_xavier_fill
    neck=dict(
        in_channels=[96, 192, 384, 768],
        init_cfg=dict(type='Caffe2Xavier', layer='Conv2d')),
    # detectron2's inference (mmregionvit/models/rpn_head.py, roi_heads.py,
    # detectron_boxes.py): its box deltas (dw, dh clamped from above only),
    # its NMS, RPN proposals ranked by objectness logit, its RoI-to-level
    # assignment, and final boxes scaled and clipped to the output image
    # with the empty ones dropped (masks pasted on the final boxes)
    rpn_head=dict(
        type='mmregionvit.DetectronRPNHead',
        bbox_coder=dict(
            _delete_=True, type='mmregionvit.DetectronDeltaXYWHBBoxCoder')),
    roi_head=dict(
        bbox_roi_extractor=dict(type='mmregionvit.DetectronRoIExtractor'),
        bbox_head=dict(
            type='mmregionvit.DetectronBBoxHead',
            bbox_coder=dict(
                _delete_=True,
                type='mmregionvit.DetectronDeltaXYWHBBoxCoder',
                weights=(10.0, 10.0, 5.0, 5.0)),
            # detectron2's FastRCNNConvFCHead initialises its FCs with
            # c2_xavier_fill (the predictors as mmdet does)
            init_cfg=[
                dict(type='Normal', std=0.01, override=dict(name='fc_cls')),
                dict(type='Normal', std=0.001, override=dict(name='fc_reg')),
                dict(type='Caffe2Xavier', override=dict(name='shared_fcs')),
            ]),
        mask_roi_extractor=dict(type='mmregionvit.DetectronRoIExtractor'),
        mask_head=dict(type='mmregionvit.DetectronMaskHead')),
    train_cfg=dict(
        # detectron2's RPN matcher: IoU below 0.3 negative, from 0.7
        # positive, and each ground truth's best anchors positive however
        # low their IoU
        rpn=dict(
            assigner=dict(
                _delete_=True,
                type='mmregionvit.DetectronMaxIoUAssigner',
                pos_iou_thr=0.7,
                neg_iou_thr=0.3,
                allow_low_quality_matches=True)),
        # detectron2's ROI matcher allows no low-quality matches
        rcnn=dict(assigner=dict(match_low_quality=False))))

# The official AUG_MODE "FIXED", in training and testing: every image is
# resized to 672x1120 (portrait ones to 1120x672) without keeping its
# aspect ratio, by PIL's bilinear resize as in detectron2. Masks stay
# polygons (detectron2's INPUT.MASK_FORMAT "polygon"): mask targets are
# rasterised from the polygons inside each RoI.
img_scale = (1120, 672)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(
        type='LoadAnnotations',
        with_bbox=True,
        with_mask=True,
        poly2mask=False),
    dict(
        type='mmregionvit.FixedOrientedResize',
        scale=img_scale,
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
# detectron2's test input: the image read by Pillow, then the official
# FIXED resize as in training (the fork's build_augmentation applies
# AUG_MODE to testing too)
test_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        backend_args={{_base_.backend_args}}),
    dict(
        type='mmregionvit.FixedOrientedResize',
        scale=img_scale,
        backend='pillow'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
# detectron2's training sampler is an endless shuffled stream
train_dataloader = dict(
    sampler=dict(type='InfiniteSampler'),
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=1e-4,
        betas=(0.9, 0.999),
        weight_decay=0.05),
    paramwise_cfg=_base_.regionvit_detectron2_paramwise_cfg)

# detectron2 counts iterations of a batch of 16 (SOLVER.IMS_PER_BATCH; here
# 2 images on each of 8 GPUs): 1x is 90k iterations (SOLVER.MAX_ITER), the
# LR divided by 10 at 60k and 80k (SOLVER.STEPS) after a linear warmup from
# 0.001x that reaches 1x at iteration 1000 (WARMUP_ITERS; mmengine's
# LinearLR reaches its end factor at end - 1). The official runs evaluate
# once, at the end (TEST.EVAL_PERIOD 0), and save every 5000 iterations.
max_iters = 90000
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=1001),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[60000, 80000],
        gamma=0.1),
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=5000))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=16)
