# RetinaNet with FPN (P3-P7, P6 from C5) as the official detectors build it
# with detectron2, on RegionViT-S with drop path 0.2 (the configs of other
# sizes change the backbone and the FPN's in_channels).
_base_ = ['mmdet::_base_/models/retinanet_r50_fpn.py', '../regionvit.py']

model = dict(
    backbone=dict(
        _base_.regionvit_backbone, _delete_=True, drop_path_rate=0.2),
    # the official normalisation (see detectron2_mask-rcnn.py)
    data_preprocessor=dict(
        mean=[103.53, 116.28, 123.675],
        std=[57.375, 57.12, 58.395],
        bgr_to_rgb=True),
    # detectron2's P7 is computed from ReLU(P6); its FPN, P6 and P7 convs
    # start from c2_xavier_fill
    neck=dict(
        in_channels=[96, 192, 384, 768],
        relu_before_extra_convs=True,
        init_cfg=dict(type='Caffe2Xavier', layer='Conv2d')),
    # detectron2's inference (mmregionvit/models/retina_head.py,
    # detectron_boxes.py): its box deltas (dw, dh clamped from above only),
    # its NMS on unclipped boxes at the input scale, then final boxes
    # scaled and clipped to the output image with the empty ones dropped;
    # no small boxes are removed. In training, its running loss normaliser.
    bbox_head=dict(
        type='mmregionvit.DetectronRetinaHead',
        bbox_coder=dict(
            _delete_=True,
            type='mmregionvit.DetectronDeltaXYWHBBoxCoder',
            clip_border=False)),
    # detectron2's RetinaNet matcher: IoU below 0.4 negative, from 0.5
    # positive, and each ground truth's best anchors positive however low
    # their IoU
    train_cfg=dict(
        assigner=dict(
            _delete_=True,
            type='mmregionvit.DetectronMaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.4,
            allow_low_quality_matches=True)),
    test_cfg=dict(min_bbox_size=-1))
