"""Exported files in the tools: tools/test.py --backend onnxruntime gives
the PyTorch model's metrics and predictions for every task; the export's
size follows the config's test pipeline; a file of another task, or fixed
to a size the images do not have, stops each runner with one line."""
import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.runner import Runner
from tool_helpers import (DEMO_DET, ROOT, as_cli, data_options, load_tool,
                          loader_options, tiny_shapes)

from mmregionvit.deploy.export import pipeline_input_size
from mmregionvit.utils.config import load_config

DEMO_SEG = str(ROOT / 'configs/segmentation/upernet_regionvit_demo_shapes.py')
DEMO_POSE = str(ROOT / 'configs/keypoint/td-hm_regionvit_demo_shapes.py')


def task_options(task: str, data: str) -> dict:
    """The demo config of ``task`` on ``data``, small batches."""
    if task == 'det':  # an untrained detector: keep every detection
        return dict(
            data_options(data), **{'model.test_cfg.rcnn.score_thr': 0.0})
    if task == 'seg':
        return loader_options(data, 2)
    ann = f'{data}/annotations/keypoints_val.json'
    return dict(
        loader_options(data, 4), **{
            'val_evaluator.ann_file': ann,
            'test_evaluator.ann_file': ann
        })


# task: config, export options (small traced sizes), metrics compared
DET_METRICS = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP',
               'coco/segm_mAP_50')
TASKS = {
    'det': (DEMO_DET, ['--shape', '96', '96'], DET_METRICS),
    'seg': (DEMO_SEG, ['--shape', '64', '64'], ('aAcc', 'mIoU', 'mAcc')),
    'pose': (DEMO_POSE, [], ('coco/AP', 'coco/AP .5', 'coco/AR')),
}


@pytest.mark.parametrize('config, size', [
    ('detection/maskrcnn_regionvit_s_coco.py', None),
    ('detection/maskrcnn_regionvit_s_ms-3x_coco.py', None),
    ('detection/maskrcnn_regionvit_demo_shapes.py', None),
    ('segmentation/upernet_regionvit_s_ade20k.py', None),
    ('segmentation/upernet_regionvit_demo_shapes.py', None),
    ('keypoint/td-hm_regionvit_s_coco-256x192.py', (256, 192)),
    ('keypoint/td-hm_regionvit_demo_shapes.py', (96, 96)),
])
def test_pipeline_input_size(config, size):
    """One size only where every image is brought to it: the official
    FIXED resize turns portrait images the other way, keep-ratio resizes
    and images at their own size vary."""
    assert pipeline_input_size(load_config(str(ROOT / 'configs' /
                                               config))) == size


def test_pipeline_input_size_of_a_plain_resize():
    cfg = load_config(DEMO_DET)
    (resize, ) = [
        t for t in cfg.test_dataloader.dataset.pipeline if t.type == 'Resize'
    ]
    resize.update(scale=(160, 120), keep_ratio=False)
    assert pipeline_input_size(cfg) == (120, 160)
    cfg.model.test_cfg = dict(mode='slide')
    assert pipeline_input_size(cfg) is None


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> str:
    return tiny_shapes(tmp_path_factory.mktemp('exported') / 'shapes')


def save_random_model(task: str, data: str, path: Path) -> None:
    """The demo model of ``task`` with its initial (seeded) weights."""
    from mmengine.registry import MODELS, init_default_scope
    cfg = load_config(TASKS[task][0], task_options(task, data))
    cfg.model.backbone.init_cfg = None
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict()}, path)


def run_test_tool(monkeypatch, *args) -> dict:
    """tools/test.py's exit code 0 and the metrics of its Runner.test."""
    results = []
    runner_test = Runner.test
    monkeypatch.setattr(
        Runner, 'test',
        lambda r: results.append(runner_test(r)) or results[-1])
    assert load_tool('test').main([str(a) for a in args]) == 0
    (metrics, ) = results
    return metrics


def same_predictions(task: str, ref: list, got: list) -> None:
    """The dumped predictions of each image agree: detections (in either
    order where scores tie) with their boxes, scores and mask pixels, label
    maps, keypoints."""
    from pycocotools import mask as mask_utils

    from mmregionvit.deploy.export import match_detections
    assert len(ref) == len(got) > 0
    for r, g in zip(ref, got):
        if task == 'det':
            r, g = r['pred_instances'], g['pred_instances']
            assert len(r['labels']) == len(g['labels']) > 0
            order = match_detections(
                g, SimpleNamespace(**r), box_atol=1e-3, score_atol=1e-4)
            assert None not in order
            masks = [mask_utils.decode(m) for m in (r['masks'], g['masks'])]
            assert (masks[0] != masks[1][..., order]).mean() <= 1e-3
        elif task == 'seg':
            r, g = r['pred_sem_seg']['data'], g['pred_sem_seg']['data']
            assert (r != g).float().mean() <= 1e-3
        else:
            torch.testing.assert_close(
                torch.as_tensor(g['pred_instances']['keypoints']),
                torch.as_tensor(r['pred_instances']['keypoints']),
                atol=1e-3,
                rtol=0)


def predictions_as_truth(task: str, data: str, dump: Path, out: Path) -> str:
    """An annotation file of the val images whose ground truth is what
    the model predicted (``dump``, from --out): the top 3 detections of
    each image (with their masks), or each instance's keypoints. Scored
    against it, the model's AP is far from 0, and a change in what the
    network computes shows in it."""
    results = pickle.loads(dump.read_bytes())
    kind = 'instances' if task == 'det' else 'keypoints'
    coco = json.loads(
        (Path(data) / f'annotations/{kind}_val.json').read_text())
    if task == 'det':
        ids = {c['name']: c['id'] for c in coco['categories']}
        classes = ('circle', 'triangle', 'rectangle')  # the config's order
        coco['annotations'] = []
        for result in results:
            found = result['pred_instances']
            for i in found['scores'].argsort(descending=True)[:3].tolist():
                x1, y1, x2, y2 = found['bboxes'][i].tolist()
                rle = dict(found['masks'][i])
                rle['counts'] = rle['counts'].decode()
                coco['annotations'].append(
                    dict(
                        id=len(coco['annotations']) + 1,
                        image_id=result['img_id'],
                        category_id=ids[classes[found['labels'][i]]],
                        bbox=[x1, y1, x2 - x1, y2 - y1],
                        area=(x2 - x1) * (y2 - y1),
                        segmentation=rle,
                        iscrowd=0))
    else:
        by_id = {a['id']: a for a in coco['annotations']}
        for result in results:
            (points, ) = result['pred_instances']['keypoints']
            by_id[result['id']]['keypoints'] = [
                v for x, y in points.tolist() for v in (x, y, 2)
            ]
    path = out / f'{kind}_predicted.json'
    path.write_text(json.dumps(coco))
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize('task', sorted(TASKS))
def test_exported_model_metrics_are_pytorchs(task, data, tmp_path,
                                             monkeypatch):
    """The same metric table (within 0.001) and the same predictions
    (--out) from the exported file in onnxruntime and in OpenVINO (fp32)
    as from the weights it came from; the
    pose file is fixed to one 96x96 crop, and the tool feeds the batches
    of 4 image by image. The untrained detector and pose model score 0 on
    the real annotations: they are scored against their own predictions
    (PyTorch's AP then far from 0)."""
    pytest.importorskip('onnxruntime')
    pytest.importorskip('openvino')
    config, export_options, keys = TASKS[task]
    options = task_options(task, data)
    weights = tmp_path / 'weights.pth'
    save_random_model(task, data, weights)
    exported = tmp_path / f'{task}.onnx'
    assert load_tool('export_onnx').main([
        'model', config,
        str(weights), '--out',
        str(exported), *export_options, '--cfg-options', *as_cli(options)
    ]) == 0

    def evaluate(backend, model, name, *extra):
        return run_test_tool(monkeypatch, config, model, '--backend', backend,
                             *extra, '--work-dir', tmp_path / name, '--out',
                             tmp_path / f'{name}.pkl', '--cfg-options',
                             *as_cli(options))

    if task != 'seg':
        evaluate('pytorch', weights, 'truth')
        truth = predictions_as_truth(task, data, tmp_path / 'truth.pkl',
                                     tmp_path)
        options.update({'test_evaluator.ann_file': truth})
    runs = [('pytorch', weights), ('onnxruntime', exported),
            ('openvino', exported, '--precision', 'fp32')]
    metrics = {
        backend: evaluate(backend, model, backend, *extra)
        for backend, model, *extra in runs
    }
    assert metrics['pytorch'][keys[0]] >= (0.5 if task == 'det' else
                                           0.9 if task == 'pose' else 15.0)
    ref = pickle.loads((tmp_path / 'pytorch.pkl').read_bytes())
    for backend in ('onnxruntime', 'openvino'):
        for key in keys:
            assert abs(metrics[backend][key] -
                       metrics['pytorch'][key]) <= 1e-3, (backend, key)
        got = pickle.loads((tmp_path / f'{backend}.pkl').read_bytes())
        same_predictions(task, ref, got)
    if task == 'det':
        prefix = tmp_path / 'server' / 'results'
        assert load_tool('test').main([
            config,
            str(exported), '--backend', 'onnxruntime', '--work-dir',
            str(tmp_path / 'fmt'), '--format-only',
            str(prefix), '--cfg-options', *as_cli(options)
        ]) == 0
        assert Path(f'{prefix}.bbox.json').stat().st_size > 0
        assert Path(f'{prefix}.segm.json').stat().st_size > 0


@pytest.mark.slow
def test_default_export_sizes_and_one_line_refusals(data, tmp_path, capsys):
    """The plain export of the demo detector frees the size (its test
    pipeline keeps the aspect ratio), the pose one is fixed to the crop
    and says so; a file fixed to another size than the images, or of
    another task, stops test.py and infer.py with one line."""
    pytest.importorskip('onnxruntime')
    export = load_tool('export_onnx').main
    det = ['--cfg-options', *as_cli(task_options('det', data))]
    pose = ['--cfg-options', *as_cli(task_options('pose', data))]

    def export_lines(*args) -> list:
        """The export's report, from its first line on."""
        assert export(['model', *map(str, args)]) == 0
        out = capsys.readouterr().out.splitlines()
        (first, ) = [i for i, s in enumerate(out) if s.startswith('exported')]
        return out[first:]

    free = tmp_path / 'det.onnx'
    out = export_lines(DEMO_DET, '--out', free, *det)
    assert out[0].startswith(f'exported {free} (dynamic batch, height and '
                             'width, opset 17)')
    assert not any('fixed input' in line for line in out)
    assert out[-1] == (f'evaluate it: python tools/test.py {DEMO_DET} {free} '
                       '--backend onnxruntime')
    crop = tmp_path / 'pose.onnx'
    out = export_lines(DEMO_POSE, '--out', crop, *pose)
    assert out[1] == (
        'fixed input: 1 image of 96x96 (the size the test pipeline of '
        f'{DEMO_POSE} makes); export with --dynamic for any batch and size')
    small = tmp_path / 'pose64.onnx'
    out = export_lines(DEMO_POSE, '--out', small, '--shape', 64, 64, *pose)
    assert out[1] == (
        f'fixed input: 1 image of 64x64 (the test pipeline of {DEMO_POSE} '
        'makes 96x96, which the file refuses); export with --dynamic for '
        'any batch and size')
    fixed = tmp_path / 'det128.onnx'
    out = export_lines(DEMO_DET, '--out', fixed, '--static', '--shape', 128,
                       128, *det)
    assert out[1] == (
        f'fixed input: 1 image of 128x128 (the test pipeline of {DEMO_DET} '
        'makes images of other sizes too, which the file refuses); export '
        'with --dynamic for any batch and size')

    def refusal(tool, *args) -> str:
        assert load_tool(tool).main([str(a) for a in args]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    def wrong_size(path, expected, got) -> str:
        return (f'error: {path} was exported for images of {expected} only, '
                f'got {got}: export it again with --dynamic '
                f'(tools/export_onnx.py model CONFIG CHECKPOINT --out {path} '
                '--dynamic).')

    # the demo images (64x64) become 192x192 in the detector's pipeline
    image = sorted((Path(data) / 'val').glob('*.png'))[0]
    backend = ['--backend', 'onnxruntime']
    assert refusal('test', DEMO_DET, fixed, *backend, '--work-dir',
                   tmp_path / 't1',
                   *det) == wrong_size(fixed, '128x128', '192x192')
    assert refusal('infer', DEMO_DET, fixed, image, *backend, '--out-dir',
                   tmp_path / 'i1') == wrong_size(fixed, '128x128', '192x192')
    # a fixed pipeline is compared before any image
    assert refusal('test', DEMO_POSE, small, *backend, '--work-dir',
                   tmp_path / 't2',
                   *pose) == wrong_size(small, '64x64', '96x96')
    assert refusal('infer', DEMO_POSE, small, image, *backend, '--out-dir',
                   tmp_path / 'i2') == wrong_size(small, '64x64', '96x96')
    assert not (tmp_path / 'i2').exists()
    # another task's file
    seg = ['--cfg-options', *as_cli(task_options('seg', data))]
    assert refusal(
        'test', DEMO_SEG, crop, *backend, '--work-dir', tmp_path / 't3',
        *seg) == (f"error: {crop} has outputs ['heatmaps'], but a mmseg "
                  "config needs a file with outputs ['seg_logits']: "
                  'export it with tools/export_onnx.py model CONFIG.')
    # the file that fits runs
    assert load_tool('infer').main([
        DEMO_DET,
        str(free),
        str(image), *backend, '--out-dir',
        str(tmp_path / 'ok')
    ]) == 0
