"""The segmentation and keypoint demos through the shared tools: train.py,
test.py and infer.py dispatch to mmseg and mmpose (a few iterations on a
tiny generated shapes set)."""
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.runner import Runner
from tool_helpers import ROOT, as_cli, load_tool, loader_options, tiny_shapes

from mmregionvit.visualization.panels import BAR

DEMO_SEG = str(ROOT / 'configs/segmentation/upernet_regionvit_demo_shapes.py')
DEMO_POSE = str(ROOT / 'configs/keypoint/td-hm_regionvit_demo_shapes.py')
ITERS = 4


def seg_options(data: str) -> dict:
    """Overrides pointing the demo segmentation config at ``data``."""
    return dict(loader_options(data, 2), **{'train_cfg.max_iters': ITERS})


def pose_options(data: str) -> dict:
    """Overrides pointing the demo keypoint config at ``data``."""
    ann = f'{data}/annotations/keypoints_val.json'
    return dict(
        loader_options(data, 4), **{
            'train_cfg.max_iters': ITERS,
            'val_evaluator.ann_file': ann,
            'test_evaluator.ann_file': ann
        })


# task: (library, config, overrides, a metric of runner.test())
TASKS = {
    'seg': ('mmseg', DEMO_SEG, seg_options, 'mIoU'),
    'pose': ('mmpose', DEMO_POSE, pose_options, 'coco/AP'),
}


@pytest.mark.slow
@pytest.mark.parametrize('task', sorted(TASKS))
def test_tools_train_test_and_infer(task, tmp_path, monkeypatch):
    library, config, options, key = TASKS[task]
    pytest.importorskip(library)
    data = tiny_shapes(tmp_path / 'shapes')
    cli = ['--cfg-options', *as_cli(options(data))]
    work = tmp_path / 'work'
    assert load_tool('train').main([config, '--work-dir',
                                    str(work), *cli]) == 0
    checkpoint = work / f'iter_{ITERS}.pth'
    assert checkpoint.is_file()

    # what Runner.test returns inside tools/test.py
    results = []
    runner_test = Runner.test

    def spy(runner):
        results.append(runner_test(runner))
        return results[-1]

    monkeypatch.setattr(Runner, 'test', spy)
    assert load_tool('test').main(
        [config,
         str(checkpoint), '--work-dir',
         str(tmp_path / 'test'), *cli]) == 0
    (metrics, ) = results
    assert isinstance(metrics[key], (float, np.floating))
    assert math.isfinite(metrics[key])

    image = sorted((Path(data) / 'val').glob('*.png'))[0]
    out = tmp_path / 'out'
    assert load_tool('infer').main(
        [config, str(checkpoint),
         str(image), '--out-dir',
         str(out)]) == 0
    assert (out / 'vis' / image.name).is_file()
    # raw predictions where the tool says (mmseg's own default is pred/),
    # named after the image
    assert [p.stem for p in (out / 'preds').iterdir()] == [image.stem]


@pytest.mark.slow
def test_short_detection_demo_trains_and_evaluates(tmp_path):
    """tools/demo.py end to end on the default generated data, 20
    iterations: the loss falls and the COCO evaluator returns numbers."""
    pytest.importorskip('mmdet')
    demo = load_tool('demo')
    iters = 20
    options = {
        'train_cfg.max_iters': iters,
        'train_cfg.val_interval': iters,
        'param_scheduler.0.end': 5,
        'param_scheduler.1.begin': 5,
        'param_scheduler.1.end': iters
    }
    for split in ('train', 'test'):
        options.update({
            f'{split}_dataloader.num_workers': 0,
            f'{split}_dataloader.persistent_workers': False
        })
    out = demo.run(
        'det',
        work_dir=str(tmp_path / 'work'),
        data_root=str(tmp_path / 'shapes'),
        cfg_options=options)
    losses = out['losses']
    assert len(losses) == iters
    assert losses[-5:].mean() < 0.8 * losses[:5].mean(), losses
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert 0 <= out['metrics'][key] <= 1
    assert Path(out['checkpoint']).is_file()
    # 8 val images of 192x192, two to a row, each as ground truth beside
    # prediction, above a legend of the class colours
    picture = cv2.imread(out['picture'])[..., ::-1]
    assert picture.shape[1] == 2 * 2 * 192
    legend = picture[-BAR:]
    for colour in ((220, 20, 60), (0, 160, 80), (30, 90, 230)):
        assert (legend == colour).all(-1).sum() >= (BAR - 8)**2


@pytest.mark.slow
def test_demo_paths_are_relative_to_the_callers_directory(
        tmp_path, monkeypatch):
    """``--data-root`` and ``--work-dir`` given as relative paths land in
    the current directory, not in the repository."""
    pytest.importorskip('mmdet')
    demo = load_tool('demo')
    # a tiny dataset instead of the default one, 2 iterations
    monkeypatch.setattr(demo, 'generate', tiny_shapes)
    monkeypatch.chdir(tmp_path)
    data, work = 'demo-data-cwd-test', 'demo-work-cwd-test'
    options = [
        'train_cfg.max_iters=2', 'param_scheduler.0.end=1',
        'param_scheduler.1.begin=1', 'param_scheduler.1.end=2'
    ] + [
        f'{split}_dataloader.{key}' for split in ('train', 'test')
        for key in ('num_workers=0', 'persistent_workers=False',
                    'batch_size=2')
    ]
    threads = torch.get_num_threads()  # the demo sets its own
    try:
        demo.main([
            '--data-root', data, '--work-dir', work, '--cfg-options', *options
        ])
    finally:
        torch.set_num_threads(threads)
        misplaced = [ROOT / n for n in (data, work) if (ROOT / n).exists()]
        for path in misplaced:
            shutil.rmtree(path)
    assert not misplaced
    assert (tmp_path / data / 'annotations').is_dir()
    assert (tmp_path / work / 'iter_2.pth').is_file()


def test_demo_says_which_target_it_missed(monkeypatch, capsys):
    """A run below a target exits 1 with one line of the figures against
    their targets; a run above them exits 0 without it."""
    demo = load_tool('demo')
    threads = torch.get_num_threads()  # the demo sets its own
    codes = []
    for bbox_map in (0.012, 0.5):
        out = dict(
            metrics={
                'coco/bbox_mAP': bbox_map,
                'coco/segm_mAP': 0.4
            },
            losses=np.array([2.0, 1.0]),
            log_dir='logs',
            picture='predictions.png',
            checkpoint='iter_20.pth')
        monkeypatch.setattr(demo, 'run', lambda *args, out=out: out)
        try:
            codes.append(demo.main([]))
        finally:
            torch.set_num_threads(threads)
    assert codes == [1, 0]
    assert capsys.readouterr().err.splitlines() == [
        'error: below the target: bbox mAP 0.012 (target 0.30); a run '
        'shortened with --cfg-options rarely reaches it'
    ]
