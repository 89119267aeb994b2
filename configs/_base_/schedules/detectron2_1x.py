# The official detectors' optimizer and 1x schedule (detectron2's SOLVER
# settings of detection/configs/*_1x.yaml): AdamW 1e-4, batch 16, 90k
# iterations. The detector configs add detectron2's weight decay groups
# (regionvit_detectron2_paramwise_cfg of regionvit.py, which the models
# fragments inherit).
_base_ = [
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
optim_wrapper = dict(
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=1e-4,
        betas=(0.9, 0.999),
        weight_decay=0.05))

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
