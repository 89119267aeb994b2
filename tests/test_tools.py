"""The tools on a tiny shapes dataset: train, kill, resume, test,
format-only results, and the pre-flight errors."""
import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import torch

pytest.importorskip('mmdet')
from tolerances import check_close
from tool_helpers import (DEMO_DET, ROOT, as_cli, data_options, load_tool,
                          tiny_shapes)

test_tool = load_tool('test')
train_tool = load_tool('train')

SHORT = [
    'train_cfg.max_iters=6', 'train_cfg.val_interval=6',
    'default_hooks.checkpoint.interval=3', 'param_scheduler.0.end=2',
    'param_scheduler.1.begin=2', 'param_scheduler.1.end=6'
]


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A demo detector trained for 6 iterations by tools/train.py."""
    tmp = tmp_path_factory.mktemp('trained')
    data = tiny_shapes(tmp / 'shapes')
    work = tmp / 'work'
    assert train_tool.main([
        DEMO_DET, '--work-dir',
        str(work), '--cfg-options', *as_cli(data_options(data)), *SHORT
    ]) == 0
    return data, work


@pytest.mark.slow
def test_runner_checkpoint_loads_weights_only(trained):
    _, work = trained
    ckpt = torch.load(work / 'iter_6.pth', weights_only=True)
    assert ckpt['meta']['iter'] == 6
    assert 'message_hub' in ckpt and 'optimizer' in ckpt
    # the allow-list is narrow: other getattr calls stay refused
    from mmengine.logging.history_buffer import HistoryBuffer

    class Sneaky:

        def __reduce__(self):
            return getattr, (HistoryBuffer, '__init__')

    path = work / 'sneaky.pth'
    torch.save({'x': Sneaky()}, path)
    with pytest.raises(Exception, match='refusing getattr'):
        torch.load(path, weights_only=True)


@pytest.mark.slow
def test_test_tool_evaluates_and_writes_server_files(trained, tmp_path):
    data, work = trained
    # an untrained model scores low: keep every detection
    options = [
        '--cfg-options', *as_cli(data_options(data)),
        'model.test_cfg.rcnn.score_thr=0.0'
    ]
    assert test_tool.main([
        DEMO_DET,
        str(work / 'iter_6.pth'), '--work-dir',
        str(tmp_path / 'eval'), *options
    ]) == 0
    prefix = tmp_path / 'server' / 'results'
    assert test_tool.main([
        DEMO_DET,
        str(work / 'iter_6.pth'), '--work-dir',
        str(tmp_path / 'fmt'), '--format-only',
        str(prefix), *options
    ]) == 0
    from pycocotools.coco import COCO
    gt = COCO(f'{data}/annotations/instances_val.json')
    for kind in ('bbox', 'segm'):
        path = Path(f'{prefix}.{kind}.json')
        results = json.loads(path.read_text())
        assert results, f'{path} is empty'
        assert {r['image_id'] for r in results} <= set(gt.getImgIds())
        dt = gt.loadRes(str(path))  # validates the format
        assert len(dt.getAnnIds()) == len(results)


@pytest.mark.slow
def test_resume_after_kill_restores_state(tmp_path, monkeypatch):
    """Killed mid-run with --amp, ``--resume`` continues at the saved
    iteration with the optimizer, LR schedule and loss scaler restored."""
    data = tiny_shapes(tmp_path / 'shapes')
    work = tmp_path / 'work'
    args = [DEMO_DET, '--work-dir', str(work), '--amp']
    options = ['--cfg-options', *as_cli(data_options(data))]
    cmd = [
        sys.executable,
        str(ROOT / 'tools/train.py'), *args, *options,
        'train_cfg.max_iters=400', 'train_cfg.val_interval=400',
        'default_hooks.checkpoint.interval=2'
    ]
    log = tmp_path / 'train.log'
    with open(log, 'w') as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=out, stderr=out, start_new_session=True)
    try:
        deadline = time.time() + 240
        while not (work / 'iter_4.pth').exists():
            assert proc.poll() is None, \
                'training died before iteration 4:\n' + log.read_text()[-3000:]
            assert time.time() < deadline, 'no checkpoint in 240 s'
            time.sleep(0.5)
        time.sleep(1.0)  # let it run on past the checkpoint
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # interrupted, mid-run
        proc.wait()
    # the newest complete checkpoint (one being written when killed is not
    # yet named in last_checkpoint)
    last = Path((work / 'last_checkpoint').read_text().strip())
    saved = torch.load(last, weights_only=True)
    saved_iter = saved['meta']['iter']
    assert saved_iter >= 4 and saved_iter % 2 == 0
    scaler = saved['optimizer']['loss_scaler']
    # a real scaler that has counted its finite steps, not a fresh one
    assert scaler['scale'] > 1 and scaler['_growth_tracker'] == saved_iter

    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    class Capture(Hook):
        """Records the state training continues from, after resuming."""

        def before_train(self, runner):
            self.iter = runner.iter
            self.optim = copy.deepcopy(runner.optim_wrapper.state_dict())
            self.schedulers = copy.deepcopy(
                [s.state_dict() for s in runner.param_schedulers])

        def after_train(self, runner):
            self.end_iter = runner.iter

    capture = Capture()
    train = Runner.train

    def train_with_capture(runner):
        runner.register_hook(capture)
        return train(runner)

    monkeypatch.setattr(Runner, 'train', train_with_capture)
    assert train_tool.main([
        *args, '--resume', *options, f'train_cfg.max_iters={saved_iter + 2}',
        f'train_cfg.val_interval={saved_iter + 3}'
    ]) == 0
    assert capture.iter == saved_iter
    for key, value in saved['optimizer']['state'].items():
        for name, tensor in value.items():
            assert torch.equal(capture.optim['state'][key][name], tensor), name
    assert capture.optim['param_groups'] == saved['optimizer']['param_groups']
    assert capture.optim['loss_scaler'] == scaler
    assert capture.schedulers == saved['param_schedulers']
    assert capture.end_iter == saved_iter + 2


@pytest.mark.slow
def test_preflight_errors_before_any_work(tmp_path, capsys):
    data = tiny_shapes(tmp_path / 'shapes')

    def run(*extra, data_dir=data):
        work = tmp_path / 'never'
        code = train_tool.main([
            DEMO_DET, '--work-dir',
            str(work), '--cfg-options', *as_cli(data_options(data_dir)), *extra
        ])
        err = capsys.readouterr().err
        assert code == 2 and not work.exists()
        return err

    err = run(data_dir=str(tmp_path / 'missing'))
    assert 'data_root' in err and 'does not exist' in err
    assert 'model.neck.in_channels=[1, 2, 3, 4]' in run(
        'model.neck.in_channels=[1,2,3,4]')
    ann = Path(data) / 'annotations/instances_train.json'
    original = ann.read_text()
    ann.write_text(json.dumps({'info': 'not coco'}))
    assert 'is not a COCO annotation file' in run()
    ann.write_text(original)
    # one bad image is skipped in training (tests/test_bad_samples.py);
    # none that decodes is a wrong data_root
    first = json.loads(original)['images'][0]['file_name']
    for image in (Path(data) / 'train').iterdir():
        image.write_bytes(b'not an image')
    err = run()
    assert 'none of the 8 images decoded from' in err and first in err
    assert 'Check data_root' in err
    assert train_tool.main(['configs/nope.py']) == 2
    assert 'config configs/nope.py does not exist' in capsys.readouterr().err


@pytest.mark.slow
def test_inference_apis_and_infer_tool(trained, tmp_path):
    from mmdet.apis import DetInferencer, inference_detector, init_detector
    from mmengine.config import Config
    data, work = trained
    cfg = Config.fromfile(DEMO_DET)
    cfg.merge_from_dict(data_options(data))
    image = sorted((Path(data) / 'val').glob('*.png'))[0]
    model = init_detector(cfg, str(work / 'iter_6.pth'), device='cpu')
    result = inference_detector(model, str(image))
    assert result.pred_instances.bboxes.shape[1] == 4
    out = DetInferencer(
        model=cfg, weights=str(work / 'iter_6.pth'), device='cpu')(
            str(image), return_vis=True)
    assert len(out['predictions']) == 1 and out['visualization'][0].ndim == 3
    assert load_tool('infer').main([
        DEMO_DET,
        str(work / 'iter_6.pth'),
        str(image), '--out-dir',
        str(tmp_path / 'out')
    ]) == 0
    assert (tmp_path / 'out' / 'vis' / image.name).is_file()
    assert (tmp_path / 'out' / 'preds' / f'{image.stem}.json').is_file()


@pytest.mark.slow
@pytest.mark.parametrize('config', [
    'configs/detection/maskrcnn_regionvit_demo_shapes.py',
    'configs/detection/retinanet_regionvit_t_coco.py',
    'configs/segmentation/upernet_regionvit_t_ade20k.py',
    'configs/keypoint/td-hm_regionvit_t_coco-256x192.py'
])
def test_get_flops(config, capsys):
    tool = load_tool('get_flops')
    assert tool.main([str(ROOT / config), '--shape', '64', '96']) == 0
    out = capsys.readouterr().out
    assert 'params:' in out and 'FLOPs:' in out
    from mmregionvit.utils.config import load_config
    r = tool.complexity(load_config(str(ROOT / config)), (64, 96))
    assert r['gflops'] > r['backbone_gflops'] > 0
    assert r['params'] > r['backbone_params'] > 0


@pytest.mark.slow
def test_model_checks_before_any_work(tmp_path, capsys):
    """infer.py, get_flops.py and benchmark.py (model mode) run the model
    pre-flight checks of train.py and test.py (not the dataset ones)."""
    wrong = 'model.neck.in_channels=[1, 2, 3, 4] does not match the backbone'
    assert load_tool('get_flops').main(
        [DEMO_DET, '--cfg-options', 'model.neck.in_channels=[1,2,3,4]']) == 2
    assert wrong in capsys.readouterr().err
    config = tmp_path / 'wrong_neck.py'
    config.write_text(f'_base_ = {DEMO_DET!r}\n'
                      'model = dict(neck=dict(in_channels=[1, 2, 3, 4]))\n')
    weights = tmp_path / 'weights.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}}, weights)
    image = tmp_path / 'image.png'
    import cv2
    import numpy as np
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    out = tmp_path / 'out'
    assert load_tool('infer').main(
        [str(config),
         str(weights),
         str(image), '--out-dir',
         str(out)]) == 2
    assert wrong in capsys.readouterr().err and not out.exists()
    with pytest.raises(SystemExit) as exc:
        load_tool('benchmark').main(
            ['model', str(config), '--repeat', '1', '--warmup', '1'])
    assert exc.value.code == 2 and wrong in capsys.readouterr().err


@pytest.mark.slow
def test_export_tool_and_infer_with_onnxruntime(trained, tmp_path, capsys):
    """tools/export_onnx.py exports the trained demo detector (checked in
    onnxruntime), and tools/infer.py --backend onnxruntime writes the
    predictions the PyTorch model writes."""
    pytest.importorskip('onnxruntime')
    data, work = trained
    checkpoint = str(work / 'iter_6.pth')
    onnx_file = str(tmp_path / 'demo.onnx')
    # no score threshold: barely trained, the detector has detections then
    config = tmp_path / 'demo_all_scores.py'
    config.write_text(
        f'_base_ = {DEMO_DET!r}\n'
        'model = dict(test_cfg=dict(rcnn=dict(score_thr=0.0)))\n')
    config = str(config)
    assert load_tool('export_onnx').main([
        'model', config, checkpoint, '--out', onnx_file, '--shape', '192',
        '192', '--dynamic'
    ]) == 0
    out = capsys.readouterr().out
    assert 'onnxruntime vs PyTorch, 1x3x192x192: the same 100 detections' \
        in out
    assert 'onnxruntime vs PyTorch, 2x3x145x145: the same 200 detections' \
        in out
    assert f'tools/infer.py {config} {onnx_file}' in out
    image = sorted((Path(data) / 'val').glob('*.png'))[0]
    infer = load_tool('infer')
    preds = {}
    for backend, weights in (('pytorch', checkpoint), ('onnxruntime',
                                                       onnx_file)):
        assert infer.main([
            config, weights,
            str(image), '--out-dir',
            str(tmp_path / backend), '--backend', backend, '--score-thr', '0'
        ]) == 0
        assert (tmp_path / backend / 'vis' / image.name).is_file()
        preds[backend] = json.loads(
            (tmp_path / backend / 'preds' / f'{image.stem}.json').read_text())
    ref, got = preds['pytorch'], preds['onnxruntime']
    assert len(ref['labels']) > 0
    # the same picture, every detection drawn with the config's class names
    # and colours (not COCO's)
    pictures = [
        cv2.imread(str(tmp_path / backend / 'vis' / image.name))
        for backend in ('pytorch', 'onnxruntime')
    ]
    assert (pictures[0] != pictures[1]).any(-1).mean() < 0.002
    assert got['labels'] == ref['labels']
    check_close('onnx_score', torch.tensor(got['scores']),
                torch.tensor(ref['scores']), 'scores')
    check_close('onnx_box', torch.tensor(got['bboxes']),
                torch.tensor(ref['bboxes']), 'boxes')
    # an .onnx file needs --backend onnxruntime, and the other way round
    assert infer.main([config, onnx_file, str(image)]) == 2
    assert infer.main(
        [config, checkpoint,
         str(image), '--backend', 'onnxruntime']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f'error: {onnx_file} is an ONNX file: add --backend onnxruntime '
        'or --backend openvino.',
        f'error: --backend onnxruntime runs an exported .onnx file, got '
        f'{checkpoint}; export one with tools/export_onnx.py model CONFIG.'
    ]


def test_export_tool_without_onnxruntime(monkeypatch, capsys):
    """Without the deploy packages, one line says what to install."""
    import importlib.util
    export_tool = load_tool('export_onnx')
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, 'find_spec', lambda name, *a: None
        if name == 'onnxruntime' else find_spec(name, *a))
    assert export_tool.main(
        ['backbone', '--arch', 'tiny', '--out', 'never.onnx']) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        'error: onnxruntime not installed: pip install -r '
        'requirements/deploy.txt'
    ]
    assert not Path('never.onnx').exists()
