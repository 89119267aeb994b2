# COCO boxes under the official AUG_MODE "DETR": detectron2_detr_instance.py
# without the masks. Boxes are clipped to the crop and empty ones dropped
# (filter_empty_instances). The fork also asks to recompute boxes from masks
# in this mode, which RetinaNet has none of (its DatasetMapper refuses that
# combination), so the code of the official RetinaNet 3x runs is not public.
_base_ = './detectron2_detr_instance.py'

train_pipeline = [
    dict(type='LoadAnnotations', with_bbox=True)
    if t.type == 'LoadAnnotations' else t for t in _base_.train_pipeline
    if t.type != 'mmregionvit.BoxesFromMasks'
]
test_pipeline = [
    dict(type='LoadAnnotations', with_bbox=True)
    if t.type == 'LoadAnnotations' else t for t in _base_.test_pipeline
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metric='bbox')
test_evaluator = val_evaluator
