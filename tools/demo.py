"""The main job on the embedded default data, end to end on a CPU.

    python tools/demo.py                # Mask R-CNN (make demo)
    python tools/demo.py --task seg     # UPerNet (make demo-seg)
    python tools/demo.py --task pose    # top-down keypoints (make demo-pose)

Generates the synthetic shapes dataset if needed (data/shapes), trains the
task's demo config, evaluates on the val split with the upstream metric,
draws ground truth beside predictions for a few val images (with a legend
of the colours), and prints the metrics and where everything was written;
a run below its targets exits 1 and says which. Relative paths (the data,
the work dir) are relative to the current directory, as in the other
tools.
"""
import argparse
import os.path as osp
import sys
import time
from typing import Optional

import cv2
import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import mmregionvit  # noqa: F401
from mmregionvit.datasets.shapes import generate
from mmregionvit.utils.config import load_config
from mmregionvit.utils.data_checks import guard_datasets
from mmregionvit.utils.preflight import check_config
from mmregionvit.utils.quiet import quiet_upstream_noise
from mmregionvit.visualization.panels import legend, paint_labels, titled

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

DATA = 'data/shapes'  # where the demo configs look
# metrics: printed name -> key in the metrics of runner.test(); targets (the
# detection demo's) in the same units, a run below them exits 1; draw:
# keyword arguments of the visualizer's add_datasample
TASKS = {
    'det':
    dict(
        config='configs/detection/maskrcnn_regionvit_demo_shapes.py',
        metrics={
            'bbox mAP': 'coco/bbox_mAP',
            'mask mAP': 'coco/segm_mAP'
        },
        targets={
            'bbox mAP': 0.30,
            'mask mAP': 0.25
        },
        draw=dict(pred_score_thr=0.3)),
    # mmseg's IoUMetric reports percentages
    'seg':
    dict(
        config='configs/segmentation/upernet_regionvit_demo_shapes.py',
        metrics={'mIoU (%)': 'mIoU'}),
    'pose':
    dict(
        config='configs/keypoint/td-hm_regionvit_demo_shapes.py',
        metrics={'keypoint AP': 'coco/AP'},
        draw=dict(kpt_thr=0.3, draw_bbox=True)),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--task', choices=sorted(TASKS), default='det')
    parser.add_argument('--work-dir', help='default: work_dirs/demo_<task>')
    parser.add_argument(
        '--data-root',
        default=DATA,
        help=f'where the generated data lives (default {DATA};'
        ' generated there if missing)')
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch threads (default 1: on small shared '
        'VMs two OpenMP threads can be several times slower)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='extra overrides, e.g. a shorter '
        'train_cfg.max_iters=100')
    return parser.parse_args(argv)


def _images(dataset, num: int) -> list:
    """Dataset indices of the first ``num`` images, grouped by image (a
    top-down keypoint dataset has one item per instance)."""
    groups = []
    for idx in range(len(dataset)):
        path = dataset.get_data_info(idx)['img_path']
        if groups and groups[-1][0] == path:
            groups[-1][1].append(idx)
        elif len(groups) == num:
            break
        else:
            groups.append((path, [idx]))
    return [indices for _, indices in groups]


def _panels(visualizer, scope: str, image: np.ndarray, sample,
            **draw_kwargs) -> list:
    """The ground truth and the prediction of ``sample`` drawn on
    ``image``: label maps painted over it (background left as it is),
    instances and keypoints by the library's visualizer."""
    meta = visualizer.dataset_meta
    if scope == 'mmseg':
        classes = list(meta['classes'])
        skip = [classes.index('background')] if 'background' in classes \
            else []
        return [
            paint_labels(
                image,
                seg.data[0].cpu().numpy(),
                meta['palette'],
                skip,
                alpha=0.7,
                outline=(255, 255, 255))
            for seg in (sample.gt_sem_seg, sample.pred_sem_seg)
        ]
    panels = []
    for gt in (True, False):
        visualizer.add_datasample(
            'demo',
            image,
            data_sample=sample,
            draw_gt=gt,
            draw_pred=not gt,
            show=False,
            **draw_kwargs)
        panels.append(visualizer.get_image())
    return panels


def _legend_entries(scope: str, meta: dict) -> tuple:
    """Names and colours of what the pictures paint: the classes (without
    a background left unpainted), or the keypoints."""
    if scope == 'mmpose':
        names = [
            meta['keypoint_id2name'][i] for i in range(meta['num_keypoints'])
        ]
        return names, meta['keypoint_colors']
    return zip(*[(n, c) for n, c in zip(meta['classes'], meta['palette'])
                 if n != 'background'])


def draw_predictions(runner: Runner,
                     cfg,
                     out_file: str,
                     num: int = 8,
                     **draw_kwargs) -> None:
    """A grid of val images, the ground truth beside the model's prediction
    for each, above a legend of the colours.

    ``draw_kwargs`` go to the visualizer's ``add_datasample`` (e.g.
    ``pred_score_thr`` for mmdet, ``kpt_thr`` for mmpose).
    """
    from mmengine.registry import VISUALIZERS
    dataset = runner.test_dataloader.dataset
    visualizer = VISUALIZERS.build(dict(cfg.visualizer, name='demo_vis'))
    if cfg.default_scope == 'mmpose':  # also sets colours and skeleton
        visualizer.set_dataset_meta(dataset.metainfo)
    else:
        visualizer.dataset_meta = dataset.metainfo
    model = runner.model.eval()
    tiles = []
    for indices in _images(dataset, num):
        data = runner.test_dataloader.collate_fn([dataset[i] for i in indices])
        with torch.no_grad():
            samples = model.test_step(data)
        if len(samples) > 1:  # the instances of one image
            from mmpose.structures import merge_data_samples
            samples = [merge_data_samples(samples)]
        sample = samples[0]
        image = cv2.imread(sample.img_path)[..., ::-1]
        panels = _panels(visualizer, cfg.default_scope, image, sample,
                         **draw_kwargs)
        tiles.append(
            np.concatenate([
                titled(p, t)
                for p, t in zip(panels, ('ground truth', 'prediction'))
            ],
                           axis=1))
    h, w = tiles[0].shape[:2]
    tiles = [cv2.resize(t, (w, h)) for t in tiles]
    while len(tiles) % 2:
        tiles.append(np.full_like(tiles[0], 255))
    grid = np.concatenate([
        np.concatenate(tiles[i:i + 2], axis=1)
        for i in range(0, len(tiles), 2)
    ],
                          axis=0)
    names, colours = _legend_entries(cfg.default_scope, dataset.metainfo)
    picture = np.concatenate([grid, legend(names, colours, grid.shape[1])])
    cv2.imwrite(out_file, picture[..., ::-1])


def _relocate(value, old: str, new: str):
    """``value`` (a config tree) with every path under ``old`` moved under
    ``new``."""
    if isinstance(value, dict):
        return {k: _relocate(v, old, new) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_relocate(v, old, new) for v in value)
    if isinstance(value, str) and value.startswith(old):
        return new + value[len(old):]
    return value


def run(task_name: str = 'det',
        work_dir: Optional[str] = None,
        data_root: str = DATA,
        cfg_options: Optional[dict] = None) -> dict:
    """Generate the data if needed, train, test and draw.

    Returns the test metrics, the training losses (one per iteration), and
    where the checkpoint, logs and picture were written.
    """
    task = TASKS[task_name]
    generate(data_root)
    work_dir = work_dir or f'work_dirs/demo_{task_name}'
    cfg = load_config(osp.join(ROOT, task['config']), cfg_options, work_dir)
    if osp.normpath(data_root) != DATA:
        cfg = Config(
            _relocate(cfg.to_dict(), DATA + '/', osp.join(data_root, '')),
            filename=cfg.filename)
    # test once, below (an iteration-based loop would also validate at its
    # last iteration whatever the val_interval)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    check_config(cfg)
    guard_datasets(cfg, True)  # bad samples skipped, listed, capped
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses, _ = runner.message_hub.get_scalar('train/loss').data
    metrics = runner.test()
    picture = osp.join(runner.log_dir, 'predictions.png')
    draw_predictions(runner, cfg, picture, **task.get('draw', {}))
    return dict(
        metrics=metrics,
        losses=losses,
        log_dir=runner.log_dir,
        picture=picture,
        checkpoint=osp.join(work_dir, f'iter_{runner.iter}.pth'))


def missed_targets(task: dict, metrics: dict) -> Optional[str]:
    """One line naming the figures below their targets, or None."""
    below = [
        f'{name} {metrics[task["metrics"][name]]:.3f} (target {target:.2f})'
        for name, target in task.get('targets', {}).items()
        if metrics[task['metrics'][name]] < target
    ]
    if not below:
        return None
    return (f'below the target: {", ".join(below)}; a run shortened with '
            '--cfg-options rarely reaches it')


def main(argv=None) -> int:
    args = parse_args(argv)
    quiet_upstream_noise()
    torch.set_num_threads(args.threads)
    task = TASKS[args.task]
    start = time.time()
    out = run(args.task, args.work_dir, args.data_root, args.cfg_options)
    minutes = (time.time() - start) / 60
    losses = out['losses']
    n = max(1, min(25, len(losses) // 4))
    print('\n' + '=' * 60)
    print(f'demo ({args.task}) finished in {minutes:.1f} min')
    print(f'  training loss: {losses[:n].mean():.3f} (first {n} iterations)'
          f' -> {losses[-n:].mean():.3f} (last {n})')
    for name, key in task['metrics'].items():
        target = task.get('targets', {}).get(name)
        print(f'  {name}: {out["metrics"][key]:.3f}' +
              ('' if target is None else f' (target {target:.2f})'))
    print(f'  checkpoint:  {out["checkpoint"]}')
    print(f'  logs:        {out["log_dir"]}')
    print(f'  predictions: {out["picture"]}')
    print('=' * 60)
    missed = missed_targets(task, out['metrics'])
    if missed:
        print(f'error: {missed}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
