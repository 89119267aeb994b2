# Mask R-CNN RegionViT-S fine-tuned on a COCO-format dataset of your own,
# from the official COCO detector (docs/custom_data.md has the commands).
# Set the lines down to `load_from`; the rest follows from them, and
# everything not here is the official S config.
_base_ = './maskrcnn_regionvit_s_coco.py'

data_root = 'data/shapes/'  # what tools/make_demo_data.py makes
train_ann_file = 'annotations/instances_train.json'
train_img_prefix = 'train/'
val_ann_file = 'annotations/instances_val.json'
val_img_prefix = 'val/'
# category names of the annotation files ("categories"), in any order;
# categories not listed here are left out
classes = ('circle', 'triangle', 'rectangle')
# the official MaskRCNN_1x_RegionViT-S.pth, converted by
# tools/convert_official.py; its 80-class predictors are not loaded
load_from = 'checkpoints/maskrcnn_regionvit_s_coco.pth'
max_epochs = 12
# -1 trains the whole backbone; 0 keeps the patch embeddings, k also the
# first k stages, as loaded (for very small datasets)
frozen_stages = -1

metainfo = dict(classes=classes)
num_classes = len(classes)
model = dict(
    backbone=dict(frozen_stages=frozen_stages, init_cfg=None),
    roi_head=dict(
        bbox_head=dict(num_classes=num_classes),
        mask_head=dict(num_classes=num_classes)))
custom_hooks = [
    dict(
        type='mmregionvit.NewClassesHook',
        predictors=[
            'roi_head.bbox_head.fc_cls', 'roi_head.bbox_head.fc_reg',
            'roi_head.mask_head.conv_logits'
        ])
]

train_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file=train_ann_file,
        data_prefix=dict(img=train_img_prefix)))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file=val_ann_file,
        data_prefix=dict(img=val_img_prefix)))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + val_ann_file)
test_evaluator = val_evaluator

# A short schedule in epochs, evaluated after each one; the learning rate
# is the official one for a batch of 16 (--auto-scale-lr scales it).
train_cfg = dict(
    _delete_=True,
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_interval=1)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        by_epoch=True,
        begin=0,
        end=max_epochs,
        milestones=[max_epochs * 2 // 3, max_epochs * 11 // 12],
        gamma=0.1),
]
default_hooks = dict(
    checkpoint=dict(
        by_epoch=True, interval=1, max_keep_ckpts=2, save_best='auto'))
log_processor = dict(by_epoch=True)
