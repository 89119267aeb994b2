"""``--amp`` of tools/test.py and tools/infer.py: the model under bfloat16
autocast on a CPU, its post-processing in float32; its metrics against
float32's on the trained demo models."""
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner
from test_demo_tasks import pose_options
from tool_helpers import (DEMO_DET, ROOT, as_cli, data_options, load_tool,
                          loader_options, tiny_shapes)

from mmregionvit.engine.autocast import autocast_inference, inference_dtype
from mmregionvit.utils.config import load_config

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason='the CPU path (bfloat16)')

DEMO_SEG = str(ROOT / 'configs/segmentation/upernet_regionvit_demo_shapes.py')
DEMO_POSE = str(ROOT / 'configs/keypoint/td-hm_regionvit_demo_shapes.py')
CONFIGS = dict(det=DEMO_DET, seg=DEMO_SEG, pose=DEMO_POSE)
# more models under --amp: (config, overrides)
MORE = {
    # a one-stage detector (its own head: box decoding, NMS)
    'retina':
    (str(ROOT / 'tests/configs/retinanet_demo_last_three_stages.py'), None),
    # Semantic FPN, with the tiny backbone
    'fpn': (str(ROOT / 'configs/segmentation/fpn_regionvit_s_ade20k.py'), {
        'model.backbone.arch': 'tiny',
        'model.backbone.init_cfg': None,
        'model.neck.in_channels': [64, 128, 256, 512]
    }),
}
# the metrics of runner.test() compared, and how far --amp may move each
# (COCO's in 0-1 units, mmseg's mIoU in percent): half a point
BOUNDS = {
    'det': {
        'coco/bbox_mAP': 0.005,
        'coco/segm_mAP': 0.005
    },
    'seg': {
        'mIoU': 0.5
    },
    'pose': {
        'coco/AP': 0.005
    },
}
# where tools/demo.py (make demo, demo-seg, demo-pose) trains by default
DEMO_WORK = Path(os.environ.get('MMREGIONVIT_DEMO_WORK', 'work_dirs'))


def test_dtype_per_device_and_refusals():
    bf16, fp16 = torch.bfloat16, torch.float16
    assert inference_dtype(None, 'pytorch', 'cpu') is None
    assert inference_dtype('auto', 'pytorch', 'cpu') == bf16
    assert inference_dtype('bf16', 'pytorch', 'cpu') == bf16
    assert inference_dtype('auto', 'pytorch', 'cuda') == fp16
    assert inference_dtype('bf16', 'pytorch', 'cuda') == bf16
    with pytest.raises(ValueError, match='is for GPUs'):
        inference_dtype('fp16', 'pytorch', 'cpu')
    with pytest.raises(ValueError, match='its own precision: leave out --amp'):
        inference_dtype('auto', 'onnxruntime', 'cpu')


@pytest.mark.parametrize('tool', ['test', 'infer'])
def test_tools_refuse_amp_with_an_exported_file_or_fp16_on_a_cpu(
        tool, tmp_path, capsys):
    """One line and exit code 2, before any model is built (the files
    exist, the checks on them come after)."""
    main = load_tool(tool).main
    cases = [('model.onnx', ['--backend', 'onnxruntime', '--amp'],
              'error: --amp runs the PyTorch model under autocast; --backend '
              'onnxruntime runs the exported file at its own precision: '
              'leave out --amp'),
             ('weights.pth', ['--amp', 'fp16'],
              'error: --amp fp16 is for GPUs; on a CPU give --amp or --amp '
              'bf16 (bfloat16)')]
    for name, options, message in cases:
        path = tmp_path / name
        path.write_bytes(b'')
        inputs = [str(path)] if tool == 'infer' else []
        assert main([DEMO_DET, str(path), *inputs, *options]) == 2
        assert capsys.readouterr().err.splitlines() == [message]


def _predict(config: str, image: str, dtype=None, options=None):
    """The data sample of ``config``'s model (with ``options``, initialised
    from the same seed) on ``image`` through tools/infer.py's inferencer,
    under ``dtype`` autocast if given; the backbone's output dtypes."""
    infer = load_tool('infer')
    cfg = load_config(config, options)
    torch.manual_seed(0)
    inferencer = infer.build_inferencer(cfg, None, 'cpu')
    model = infer.inferencer_model(inferencer)
    dtypes = []
    model.backbone.register_forward_hook(
        lambda m, i, out: dtypes.extend(x.dtype for x in out))
    if dtype is not None:
        autocast_inference(model, 'cpu', dtype)
    out = inferencer(image, return_datasamples=True)
    if cfg.default_scope == 'mmpose':
        out = next(out)
    pred = out['predictions'] if isinstance(out, dict) else out
    return (pred[0] if isinstance(pred, list) else pred), set(dtypes)


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    data = tiny_shapes(tmp_path_factory.mktemp('amp') / 'shapes')
    return str(sorted((Path(data) / 'val').glob('*.png'))[0])


@pytest.mark.parametrize('task', [*sorted(CONFIGS), *MORE])
def test_backbone_in_bfloat16_post_processing_in_float32(
        task, image, monkeypatch):
    """Every task runs (mmcv's CPU RoIAlign and numpy's keypoint decoding
    refuse bfloat16); box decoding and mask pasting see float32 with
    autocast off; the predictions are float32."""
    from mmdet.models.roi_heads.mask_heads import fcn_mask_head
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
    seen = []

    def spy(fn):

        def run(*args, **kwargs):
            seen.append(
                (fn.__name__, args[1].dtype, torch.is_autocast_enabled('cpu')))
            return fn(*args, **kwargs)

        return run

    monkeypatch.setattr(fcn_mask_head, '_do_paste_mask',
                        spy(fcn_mask_head._do_paste_mask))
    from mmregionvit.models.detectron_boxes import \
        DetectronDeltaXYWHBBoxCoder as Coder
    for cls in (Coder, DeltaXYWHBBoxCoder):
        monkeypatch.setattr(cls, 'decode', spy(cls.decode))
    config, options = MORE.get(task, (CONFIGS.get(task), None))
    sample, dtypes = _predict(config, image, torch.bfloat16, options)
    assert dtypes == {torch.bfloat16}
    if task in ('det', 'retina'):
        names = {name for name, *_ in seen}
        masks = {'_do_paste_mask'} if task == 'det' else set()
        assert names == {'decode', *masks}, names
        assert {(d, on) for _, d, on in seen} == {(torch.float32, False)}
        pred = sample.pred_instances
        assert pred.bboxes.dtype == pred.scores.dtype == torch.float32
        if masks:
            assert pred.masks.dtype == torch.bool
    elif task in ('seg', 'fpn'):
        assert sample.seg_logits.data.dtype == torch.float32
        # the same weights in float32: logits within bfloat16's rounding
        # of the features (8 significant bits, a few roundings deep)
        fp32, fp32_dtypes = _predict(config, image, None, options)
        assert fp32_dtypes == {torch.float32}
        ref = fp32.seg_logits.data
        err = (sample.seg_logits.data - ref).abs().max().item()
        assert err <= 0.05 * ref.abs().max().item(), err
    else:
        keypoints = sample.pred_instances.keypoints
        assert keypoints.dtype in (np.float32, np.float64)
        assert np.isfinite(keypoints).all()


def test_classes_are_left_as_they_are(image):
    """Only the model given is patched: a second model of the class runs
    its post-processing under autocast (and mmcv's RoIAlign refuses)."""
    _predict(DEMO_DET, image, torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16), \
            pytest.raises(NotImplementedError, match='BFloat16'):
        _predict(DEMO_DET, image)


def _options(task: str, data: str) -> dict:
    """Overrides pointing ``task``'s demo config at ``data``."""
    if task == 'det':
        return data_options(data)
    if task == 'pose':
        return pose_options(data)
    return loader_options(data, 2)


def _evaluate(monkeypatch, task: str, checkpoint: str, data: str, work: Path,
              *extra: str) -> tuple:
    """tools/test.py on ``checkpoint``: the metrics of ``runner.test()`` and
    the dtypes of the backbone's outputs."""
    results, dtypes = [], set()
    runner_test = Runner.test

    def spy(runner):
        runner.model.backbone.register_forward_hook(
            lambda m, i, out: dtypes.update(x.dtype for x in out))
        results.append(runner_test(runner))
        return results[-1]

    monkeypatch.setattr(Runner, 'test', spy)
    assert load_tool('test').main([
        CONFIGS[task], checkpoint, '--work-dir',
        str(work), *extra, '--cfg-options', *as_cli(_options(task, data))
    ]) == 0
    (metrics, ) = results
    return metrics, dtypes


@pytest.mark.slow
@pytest.mark.parametrize('task', sorted(CONFIGS))
def test_test_tool_amp_end_to_end(task, tmp_path, monkeypatch):
    """tools/test.py --amp on untrained demo weights: the backbone in
    bfloat16, the upstream metric computed (an untrained model's metrics
    are near zero: their accuracy is the next test's)."""
    data = tiny_shapes(tmp_path / 'shapes')
    cfg = load_config(CONFIGS[task])
    init_default_scope(cfg.default_scope)
    checkpoint = str(tmp_path / 'weights.pth')
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict()},
               checkpoint)
    metrics, dtypes = _evaluate(monkeypatch, task, checkpoint, data,
                                tmp_path / 'work', '--amp')
    assert dtypes == {torch.bfloat16}
    for key in BOUNDS[task]:
        assert math.isfinite(metrics[key]), metrics
    if task == 'det':  # infer.py once, on the same weights
        image = sorted((Path(data) / 'val').glob('*.png'))[0]
        out = tmp_path / 'out'
        assert load_tool('infer').main(
            [DEMO_DET, checkpoint,
             str(image), '--out-dir',
             str(out), '--amp']) == 0
        assert (out / 'vis' / image.name).is_file()
        assert (out / 'preds' / f'{image.stem}.json').is_file()


def _demo_checkpoint(task: str) -> str:
    """The last checkpoint of ``task``'s demo in ``DEMO_WORK``."""
    found = sorted(
        (DEMO_WORK / f'demo_{task}').glob('iter_*.pth'),
        key=lambda p: int(p.stem.split('_')[1]))
    if not found:
        pytest.skip(f'no trained {task} demo in {DEMO_WORK}/demo_{task}: '
                    'make demo, make demo-seg, make demo-pose train them '
                    '(MMREGIONVIT_DEMO_WORK: their parent folder elsewhere)')
    return str(found[-1])


@pytest.mark.slow
@pytest.mark.parametrize('task', sorted(CONFIGS))
def test_amp_metrics_within_half_a_point_of_float32(task, tmp_path,
                                                    monkeypatch):
    """The trained demo models on the demo's val split (generated again,
    the same images): --amp's metrics within half a point of float32's."""
    from mmregionvit.datasets.shapes import generate
    checkpoint = _demo_checkpoint(task)
    data = str(tmp_path / 'shapes')
    generate(data)  # the demos' data: the default seed and sizes
    metrics = {}
    for name, extra in (('fp32', []), ('bf16', ['--amp'])):
        metrics[name], _ = _evaluate(monkeypatch, task, checkpoint, data,
                                     tmp_path / name, *extra)
    for key, bound in BOUNDS[task].items():
        fp32, bf16 = metrics['fp32'][key], metrics['bf16'][key]
        print(f'{task} {key}: fp32 {fp32:.4f} bf16 {bf16:.4f}')
        assert abs(bf16 - fp32) <= bound, (key, fp32, bf16)


@pytest.mark.slow
def test_benchmark_model_bf16_runs_mask_rcnn(tmp_path):
    """tools/benchmark.py model --dtype bf16 times the model as --amp runs
    it: Mask R-CNN gets through RoIAlign and keeps its detections."""
    import json

    from test_benchmark import FAST, MASKRCNN, MINI_MASKRCNN, bench
    out = tmp_path / 'report.json'
    threads = torch.get_num_threads()
    try:
        bench([
            'model', MASKRCNN, '--dtype', 'bf16', '--input-size', '64', '96',
            '--repeat', '1', '--json',
            str(out), *FAST, '--cfg-options', *MINI_MASKRCNN,
            'model.test_cfg.rcnn.score_thr=0.0'
        ])
    finally:
        torch.set_num_threads(threads)
    [work] = json.loads(out.read_text())['workloads']
    assert work['detections_per_image'] == 100
    assert any(
        n.startswith('post-processing in float32') for n in work['notes'])
