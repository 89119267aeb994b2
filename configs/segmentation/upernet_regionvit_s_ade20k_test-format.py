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
# --tta: the scales and flips of _base_/datasets/ade20k_tta.py, without
# annotations
tta_pipeline = [
    dict(
        t,
        transforms=[c for c in t.transforms if c[0].type != 'LoadAnnotations'])
    if t.type == 'TestTimeAug' else t for t in _base_.tta_pipeline
]
test_evaluator = dict(
    format_only=True,
    output_dir='work_dirs/upernet_regionvit_s_ade20k_test-format/png')
