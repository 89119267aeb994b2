"""The main job on the embedded default data, end to end on a CPU.

    python tools/demo.py                # Mask R-CNN (make demo)
    python tools/demo.py --task seg     # UPerNet (make demo-seg)
    python tools/demo.py --task pose    # top-down keypoints (make demo-pose)

Generates the synthetic shapes dataset if needed (data/shapes), trains the
task's demo config, evaluates on the val split
with the upstream metric, draws predictions on val images, and prints the
metrics and where everything was written.
"""
import argparse
import os
import os.path as osp
import sys
import time

import cv2
import numpy as np
from mmengine.config import DictAction
from mmengine.runner import Runner

import mmregionvit  # noqa: F401
from mmregionvit.utils.config import load_config
from mmregionvit.utils.preflight import check_config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'tools'))
from make_demo_data import generate  # noqa: E402

DATA = 'data/shapes'  # where the demo configs look
TASKS = {
    'det': dict(config='configs/detection/maskrcnn_regionvit_demo_shapes.py',
                metrics={'bbox mAP': 'coco/bbox_mAP',
                         'mask mAP': 'coco/segm_mAP'},
                targets={'bbox mAP': 0.30, 'mask mAP': 0.25}),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--task', choices=sorted(TASKS), default='det')
    parser.add_argument('--work-dir', help='default: work_dirs/demo_<task>')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='extra overrides, e.g. a shorter '
                        'train_cfg.max_iters=100')
    return parser.parse_args(argv)


def draw_predictions(runner: Runner, cfg, out_file: str, num: int = 8) -> None:
    """A grid of val images with the model's predictions drawn on them."""
    from mmengine.registry import VISUALIZERS
    dataset = runner.test_dataloader.dataset
    visualizer = VISUALIZERS.build(dict(cfg.visualizer, name='demo_vis'))
    visualizer.dataset_meta = dataset.metainfo
    model = runner.model.eval()
    tiles = []
    for idx in range(min(num, len(dataset))):
        data = runner.test_dataloader.collate_fn([dataset[idx]])
        sample = model.test_step(data)[0]
        image = cv2.imread(sample.img_path)[..., ::-1]
        visualizer.add_datasample('pred', image, data_sample=sample,
                                  draw_gt=False, show=False,
                                  pred_score_thr=0.3)
        tiles.append(visualizer.get_image())
    h, w = tiles[0].shape[:2]
    tiles = [cv2.resize(t, (w, h)) for t in tiles]
    while len(tiles) % 4:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + 4], axis=1)
            for i in range(0, len(tiles), 4)]
    cv2.imwrite(out_file, np.concatenate(rows, axis=0)[..., ::-1])


def main(argv=None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    task = TASKS[args.task]
    start = time.time()
    generate(DATA)
    work_dir = args.work_dir or f'work_dirs/demo_{args.task}'
    cfg = load_config(task['config'], args.cfg_options, work_dir)
    cfg.train_cfg.val_interval = cfg.train_cfg.max_iters + 1  # test once, below
    check_config(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    picture = osp.join(runner.log_dir, 'predictions.png')
    draw_predictions(runner, cfg, picture)
    minutes = (time.time() - start) / 60
    print('\n' + '=' * 60)
    print(f'demo ({args.task}) finished in {minutes:.1f} min')
    ok = True
    for name, key in task['metrics'].items():
        value = metrics[key]
        target = task['targets'][name]
        ok &= value >= target
        print(f'  {name}: {value:.3f} (target {target:.2f})')
    print(f'  checkpoint:  {osp.join(work_dir, f"iter_{runner.iter}.pth")}')
    print(f'  logs:        {runner.log_dir}')
    print(f'  predictions: {picture}')
    print('=' * 60)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
