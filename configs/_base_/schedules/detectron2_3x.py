# The official 3x schedule (*_3x_ms.yaml): the 1x one (detectron2_1x.py)
# for 270k iterations at batch 16, the LR divided by 10 at 210k and 250k.
_base_ = './detectron2_1x.py'

max_iters = 270000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(s, end=max_iters, milestones=[210000, 250000])
    if s.type == 'MultiStepLR' else s for s in _base_.param_scheduler
]
