# Mask R-CNN RegionViT-B+ (w/ PEG) with larger inputs (the official model
# zoo's "dagger" row), 3x multi-scale schedule: the official
# mask_rcnn_regionvit_FPN_3x_ms_large.yaml, i.e. the 3x recipe
# (maskrcnn_regionvit_s_ms-3x_coco.py) with the long side of training images
# at most 1344 (MAX_SIZE_TRAIN) and testing at shorter side 896, long side at
# most 1344 (MIN_SIZE_TEST, MAX_SIZE_TEST).
_base_ = './maskrcnn_regionvit_b-w14-peg_ms-3x_coco.py'

max_size = 1344


def larger(transform):
    """``transform`` with the long side (of each of its choices) at most
    ``max_size``."""
    if transform.type == 'RandomChoice':
        return dict(
            transform,
            transforms=[[larger(t) for t in choice]
                        for choice in transform.transforms])
    if 'max_size' in transform:
        return dict(transform, max_size=max_size)
    return transform


train_pipeline = [larger(t) for t in _base_.train_pipeline]
# detectron2's test input: the image read by Pillow, then (AUG_MODE
# "DETR" has no test transform) detectron2's shorter-side resize
test_pipeline = [
    dict(larger(t), scale=896) if t.type == 'ResizeShortestEdge' else t
    for t in _base_.test_pipeline
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
