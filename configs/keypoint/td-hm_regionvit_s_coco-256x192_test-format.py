# Keypoint results of td-hm_regionvit_s_coco-256x192.py on COCO test-dev
# for the evaluation server:
#   python tools/test.py THIS_CONFIG CKPT
# CocoMetric with format_only computes no AP and writes
# <outfile_prefix>.keypoints.json (rename to the server's
# person_keypoints_test-dev2017_<name>_results.json and zip it).
# Needs annotations/image_info_test-dev2017.json and the person boxes of
# the usual detector on test-dev (COCO_test-dev2017_detections_AP_H_609_
# person.json, 60.9 AP).
_base_ = './td-hm_regionvit_s_coco-256x192.py'

test_dataloader = dict(
    dataset=dict(
        ann_file='annotations/image_info_test-dev2017.json',
        bbox_file='data/coco/person_detection_results/'
        'COCO_test-dev2017_detections_AP_H_609_person.json',
        data_prefix=dict(img='test2017/')))
test_evaluator = dict(
    ann_file='data/coco/annotations/image_info_test-dev2017.json',
    format_only=True,
    outfile_prefix='work_dirs/td-hm_regionvit_s_coco-256x192_test-format/'
    'results')
