# Mask R-CNN with FPN as the official detectors build it with detectron2,
# on RegionViT-S with drop path 0.2 (the configs of other sizes change the
# backbone and the FPN's in_channels).
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py', '../regionvit.py']

model = dict(
    backbone=dict(
        _base_.regionvit_backbone, _delete_=True, drop_path_rate=0.2),
    # The official detectors normalise RGB images with mean and std listed
    # in BGR order (detectron2's defaults with INPUT.FORMAT RGB); the
    # converted COCO weights expect exactly this.
    data_preprocessor=dict(
        mean=[103.53, 116.28, 123.675],
        std=[57.375, 57.12, 58.395],
        bgr_to_rgb=True),
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
