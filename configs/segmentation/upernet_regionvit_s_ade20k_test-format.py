# Predictions of upernet_regionvit_s_ade20k.py on the ADE20K test set
# (release_test.zip, unpacked to data/ade/release_test/testing/*.jpg), saved
# as PNGs for the benchmark server:
#   python tools/test.py THIS_CONFIG CKPT [--tta]
# IoUMetric with format_only computes no metric and writes one
# <image name>.png per image into output_dir, with labels shifted back to
# the server's 1..150 (the dataset's reduce_zero_label is recorded in each
# sample). Zip the PNGs in output_dir for upload.
_base_ = './upernet_regionvit_s_ade20k.py'

test_dataloader = dict(
    dataset=dict(
        data_root='data/ade/release_test',
        data_prefix=dict(_delete_=True, img_path='testing'),
        # no annotations for the test set
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(2048, 512), keep_ratio=True),
            dict(type='PackSegInputs'),
        ]))
# --tta: the same pipeline with scales and flips, no annotations
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
            [dict(type='PackSegInputs')],
        ])
]
test_evaluator = dict(
    format_only=True,
    output_dir='work_dirs/upernet_regionvit_s_ade20k_test-format/png')
