# RetinaNet with FPN (P3-P7, P6 from C5), RegionViT-S backbone, 1x schedule:
# the official recipe (detection/configs/retinanet_regionvit_FPN_1x.yaml on
# detectron2's defaults, as the official detectron2 fork and
# main_detection.py train it): 672x1120 inputs, AdamW 1e-4, detectron2's
# weight decay groups, batch 16, 90k iterations, drop path 0.2, detection
# norms on.
_base_ = [
    '../_base_/models/detectron2_retinanet.py',
    '../_base_/datasets/detectron2_fixed_detection.py',
    '../_base_/schedules/detectron2_1x.py',
]
# detectron2's weight decay groups, as the official detectors train
optim_wrapper = dict(paramwise_cfg=_base_.regionvit_detectron2_paramwise_cfg)
