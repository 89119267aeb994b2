"""OpenVINO runs the exported files as onnxruntime does: at fp32 within
the onnxruntime bounds of PyTorch, at bf16 within bounds measured for
bf16; tools/infer.py and tools/test.py take ``--backend openvino`` and its
``--precision``, and refuse a precision another backend cannot take, or a
missing package, with one line."""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from test_exported_models import save_random_model, task_options
from tolerances import check, check_close
from tool_helpers import DEMO_DET, ROOT, as_cli, load_tool, tiny_shapes

from mmregionvit.deploy import export as onnx_export
from mmregionvit.deploy.runtime import OpenVinoModel
from mmregionvit.models import RegionViT

TINY = dict(
    embed_dim=[32, 32, 64, 128, 256],
    num_heads=[1, 2, 4, 8],
    depth=[1, 1, 2, 1],
    kernel_sizes=[7, 7, 7, 7])


def openvino_kernels():
    """The openvino module; a skip where oneDNN is held to fewer
    instructions than the CPU has (``ONEDNN_MAX_CPU_ISA``, as in make
    test-avx2 and make noise): OpenVINO's CPU plugin, which reads it too,
    then finds no kernel for some nodes (softmax at bf16 under AVX2,
    deconvolution at fp32 under SSE4.1) rather than computing as such a
    CPU would."""
    ov = pytest.importorskip('openvino')
    if os.environ.get('ONEDNN_MAX_CPU_ISA'):
        pytest.skip('OpenVINO does not run under ONEDNN_MAX_CPU_ISA')
    return ov


def bf16_capable() -> bool:
    import openvino as ov
    return 'BF16' in ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES')


def relative_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f'shapes {tuple(a.shape)}, {tuple(b.shape)}'
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.slow
def test_backbone_tensors_at_each_precision(tmp_path):
    """The backbone file in OpenVINO: fp32 within ``onnx_tensor`` of
    PyTorch at a size and batch it was not traced at, bf16 within
    ``openvino_bf16_tensor`` (relative L2); the precision asked for is
    the one compiled, and without one OpenVINO's default."""
    ov = openvino_kernels()
    model = RegionViT(arch=TINY)
    model.init_weights()
    model.eval()
    path = tmp_path / 'backbone.onnx'
    onnx_export.export(
        onnx_export.backbone_graph(model), torch.randn(1, 3, 112, 112),
        str(path))
    x = torch.randn(2, 3, 100, 150)
    with torch.no_grad():
        ref = model(x)
    hint = 'INFERENCE_PRECISION_HINT'
    assert OpenVinoModel(str(path)).compiled.get_property(hint) == \
        ov.Core().get_property('CPU', hint)
    precisions = ['fp32'] + (['bf16'] if bf16_capable() else [])
    for precision in precisions:
        exported = OpenVinoModel(str(path), precision)
        assert exported.compiled.get_property(hint) == {
            'fp32': ov.Type.f32,
            'bf16': ov.Type.bf16
        }[precision]
        outs = exported(x)
        assert len(outs) == len(ref)
        for i, (out, r) in enumerate(zip(outs, ref)):
            if precision == 'fp32':
                check_close('onnx_tensor', out, r, f'stage {i}')
            else:
                check('openvino_bf16_tensor', relative_l2(out, r),
                      f'stage {i}')


@pytest.fixture(scope='module')
def detector(tmp_path_factory):
    """The demo detector with its initial weights, keeping every detection
    (a config file), its weights, its file exported at 96x96 (dynamic),
    the data, and the predictions tools/infer.py writes with the
    weights."""
    openvino_kernels()
    tmp = tmp_path_factory.mktemp('openvino')
    data = tiny_shapes(tmp / 'shapes')
    weights = tmp / 'weights.pth'
    save_random_model('det', data, weights)
    exported = tmp / 'det.onnx'
    assert load_tool('export_onnx').main([
        'model', DEMO_DET,
        str(weights), '--out',
        str(exported), '--shape', '96', '96', '--cfg-options',
        *as_cli(task_options('det', data))
    ]) == 0
    config = tmp / 'demo_all_scores.py'
    config.write_text(
        f'_base_ = {DEMO_DET!r}\n'
        'model = dict(test_cfg=dict(rcnn=dict(score_thr=0.0)))\n')
    found = SimpleNamespace(
        config=str(config), weights=weights, file=exported, data=data)
    found.pytorch = infer_preds(found, weights, tmp / 'pytorch')
    return found


def infer_preds(detector, model, out: Path, *backend) -> list:
    """tools/infer.py's predictions (preds/*.json) for the val images."""
    images = sorted((Path(detector.data) / 'val').glob('*.png'))
    assert load_tool('infer').main([
        detector.config,
        str(model), *map(str, images), '--out-dir',
        str(out), '--score-thr', '0', *backend
    ]) == 0
    return [
        json.loads((out / 'preds' / f'{i.stem}.json').read_text())
        for i in images
    ]


def as_tensors(pred: dict) -> dict:
    return {k: torch.tensor(pred[k]) for k in ('labels', 'scores', 'bboxes')}


@pytest.mark.slow
def test_infer_fp32_writes_pytorchs_predictions(detector, tmp_path):
    """At fp32, the same detections in the same order as the weights give,
    scores and boxes within the onnxruntime bounds, and the same masks
    (up to 0.1% of their pixels, as onnxruntime's)."""
    from pycocotools import mask as mask_utils
    ref = detector.pytorch
    got = infer_preds(detector, detector.file, tmp_path / 'openvino',
                      '--backend', 'openvino', '--precision', 'fp32')
    assert len(ref) == len(got) == 4
    for r, g in zip(ref, got):
        assert len(r['labels']) > 0
        assert g['labels'] == r['labels']
        assert g.keys() == r.keys() == {'labels', 'scores', 'bboxes', 'masks'}
        masks = [mask_utils.decode(p['masks']) for p in (r, g)]
        assert (masks[0] != masks[1]).mean() <= 1e-3
        r, g = as_tensors(r), as_tensors(g)
        check_close('onnx_score', g['scores'], r['scores'], 'scores')
        check_close('onnx_box', g['bboxes'], r['bboxes'], 'boxes')


@pytest.mark.slow
def test_infer_bf16_within_bf16_bounds(detector, tmp_path):
    """At bf16 (OpenVINO's default on CPUs with bf16 instructions),
    nearly all of PyTorch's detections have their counterpart (same label,
    box within 1 px: NMS keeps no two so close), within
    ``openvino_bf16_score`` and ``openvino_bf16_box``; near-ties among the
    untrained detector's scores may let another candidate through, at
    most ``openvino_bf16_unmatched`` of them."""
    if not bf16_capable():
        pytest.skip('the CPU has no bf16 instructions for OpenVINO')
    from mmregionvit.deploy.export import match_detections
    ref = detector.pytorch
    got = infer_preds(detector, detector.file, tmp_path / 'openvino',
                      '--backend', 'openvino', '--precision', 'bf16')
    for i, (r, g) in enumerate(zip(ref, got)):
        r, g = as_tensors(r), as_tensors(g)
        assert len(r['labels']) > 0
        order = match_detections(
            g, SimpleNamespace(**r), box_atol=1.0, score_atol=1.0)
        found = [(k, j) for k, j in enumerate(order) if j is not None]
        check('openvino_bf16_unmatched', 1 - len(found) / len(order),
              f'image {i}')
        k, j = map(list, zip(*found))
        check_close('openvino_bf16_score', g['scores'][j], r['scores'][k],
                    f'image {i} scores')
        check_close('openvino_bf16_box', g['bboxes'][j], r['bboxes'][k],
                    f'image {i} boxes')


def one_line_refusal(capsys, tool: str, *args) -> str:
    assert load_tool(tool).main([str(a) for a in args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_precision_and_package_refusals(tmp_path, capsys, monkeypatch):
    """--precision with another backend, or --backend openvino without the
    package, stop both tools with one line before any work."""
    exported = tmp_path / 'model.onnx'
    exported.write_bytes(b'not read')
    image = tmp_path / 'image.png'
    image.write_bytes(b'not read')
    runs = {
        'infer': [DEMO_DET, exported, image, '--out-dir', tmp_path / 'out'],
        'test': [DEMO_DET, exported, '--work-dir', tmp_path / 'work'],
    }
    for tool, args in runs.items():
        assert one_line_refusal(
            capsys, tool, *args, '--backend', 'onnxruntime', '--precision',
            'bf16') == ('error: --precision bf16 is for --backend openvino, '
                        'not onnxruntime: drop it.')
    weights = tmp_path / 'weights.pth'
    weights.write_bytes(b'not read')
    assert one_line_refusal(
        capsys, 'test', DEMO_DET, weights, '--precision',
        'fp32') == ('error: --precision fp32 is for --backend openvino, not '
                    'pytorch: drop it.')
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, 'find_spec', lambda name, *a: None
        if name == 'openvino' else find_spec(name, *a))
    for tool, args in runs.items():
        assert one_line_refusal(
            capsys, tool, *args, '--backend',
            'openvino') == ('error: openvino not installed (--backend '
                            'openvino): pip install -r '
                            'requirements/deploy.txt')
    assert not (tmp_path / 'out').exists()
    assert not (tmp_path / 'work').exists()


def test_compile_failure_is_one_line(tmp_path, capsys, monkeypatch):
    """A file OpenVINO cannot compile (here: a kernel missing for the
    precision) stops tools/infer.py with the last line of OpenVINO's
    message, before any output."""
    ov = pytest.importorskip('openvino')
    import cv2
    import numpy as np

    def refuse(*args, **kwargs):
        raise RuntimeError(
            'Exception from src/inference/src/cpp/core.cpp:132:\n'
            'Supported primitive descriptors list is empty for node: '
            'Softmax\n')

    monkeypatch.setattr(ov.Core, 'compile_model', refuse)
    exported = tmp_path / 'model.onnx'
    exported.write_bytes(b'not read')
    image = tmp_path / 'image.png'
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    assert one_line_refusal(
        capsys, 'infer', DEMO_DET, exported, image, '--out-dir',
        tmp_path / 'out', '--backend', 'openvino', '--precision', 'bf16') == (
            f'error: OpenVINO cannot compile {exported} at bf16: Supported '
            'primitive descriptors list is empty for node: Softmax')
    assert not (tmp_path / 'out').exists()


# Three models opened, run and let go in another order than they came;
# then a signal handled on the main thread. Prints the thread's alternate
# signal stack (address, flags) before and after.
SIGNAL_STACK = textwrap.dedent("""
    import ctypes, gc, json, signal, sys, threading
    import torch
    from mmregionvit.deploy import export as onnx_export
    from mmregionvit.deploy.runtime import OpenVinoModel
    from mmregionvit.models import RegionViT

    class Stack(ctypes.Structure):
        _fields_ = [('sp', ctypes.c_void_p), ('flags', ctypes.c_int),
                    ('size', ctypes.c_size_t)]

    def current():
        stack = Stack()
        ctypes.CDLL(None).sigaltstack(None, ctypes.byref(stack))
        return [stack.sp, stack.flags]

    model = RegionViT(arch=dict(embed_dim=[32, 32, 64, 128, 256],
                                num_heads=[1, 2, 4, 8], depth=[1, 1, 2, 1],
                                kernel_sizes=[7, 7, 7, 7])).eval()
    x = torch.randn(1, 3, 64, 64)
    onnx_export.export(onnx_export.backbone_graph(model), x, sys.argv[1])
    before = current()

    def opened(precision):
        exported = OpenVinoModel(sys.argv[1], precision)
        exported.run(x)
        return exported

    a, b = opened('fp32'), opened(None)
    del a
    gc.collect()
    c = opened('fp32')
    del b, c
    gc.collect()
    print(json.dumps([before, current()]), flush=True)
    signal.signal(signal.SIGCHLD, lambda *args: None)
    signal.pthread_kill(threading.main_thread().ident, signal.SIGCHLD)
    print('handled', flush=True)
    """)


@pytest.mark.slow
def test_models_leave_the_signal_stack_as_it_was(tmp_path):
    """OpenVINO's CPU plugin puts its own alternate signal stack on the
    threads that compile or run a model; models let go out of order left
    the main thread on a freed one, and the next signal handled there
    (here SIGCHLD, as when a subprocess ends after a DataLoader set its
    handler) killed the process without a trace."""
    openvino_kernels()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, '-c', SIGNAL_STACK,
         str(tmp_path / 'backbone.onnx')],
        capture_output=True,
        text=True,
        env=env)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    *_, stacks, handled = out.stdout.splitlines()
    before, after = json.loads(stacks)
    assert after == before
    assert handled == 'handled'
