# mmseg's ADE20K with the multi-scale + flip test (mmseg's tools/test.py
# --tta) relative to the single-scale 2048x512 test scale, the classic
# MultiScaleFlipAug protocol: ratios 0.5-1.75 of that scale, each also
# flipped. mmseg's tta_pipeline scales the original image instead, which for
# ADE20K is not the 512 short side used in training and single-scale
# testing.
_base_ = 'mmseg::_base_/datasets/ade20k.py'

img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(
                    type='Resize',
                    scale=(int(2048 * r), int(512 * r)),
                    keep_ratio=True) for r in img_ratios
            ],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ])
]
