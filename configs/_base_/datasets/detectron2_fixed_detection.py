# COCO boxes under the official AUG_MODE "FIXED": detectron2_fixed_instance.py
# without the masks.
_base_ = './detectron2_fixed_instance.py'

train_pipeline = [
    dict(type='LoadAnnotations', with_bbox=True)
    if t.type == 'LoadAnnotations' else t for t in _base_.train_pipeline
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
