"""``--amp`` of tools/test.py and tools/infer.py: the model under bfloat16
autocast on a CPU, its post-processing in float32."""
from pathlib import Path

import numpy as np
import pytest
import torch
from tool_helpers import DEMO_DET, ROOT, load_tool, tiny_shapes

from mmregionvit.engine.autocast import autocast_inference, inference_dtype
from mmregionvit.utils.config import load_config

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason='the CPU path (bfloat16)')

DEMO_SEG = str(ROOT / 'configs/segmentation/upernet_regionvit_demo_shapes.py')
DEMO_POSE = str(ROOT / 'configs/keypoint/td-hm_regionvit_demo_shapes.py')
CONFIGS = dict(det=DEMO_DET, seg=DEMO_SEG, pose=DEMO_POSE)


def test_dtype_per_device_and_refusals():
    bf16, fp16 = torch.bfloat16, torch.float16
    assert inference_dtype(None, 'pytorch', 'cpu') is None
    assert inference_dtype('auto', 'pytorch', 'cpu') == bf16
    assert inference_dtype('bf16', 'pytorch', 'cpu') == bf16
    assert inference_dtype('auto', 'pytorch', 'cuda') == fp16
    assert inference_dtype('bf16', 'pytorch', 'cuda') == bf16
    with pytest.raises(ValueError, match='needs a GPU'):
        inference_dtype('fp16', 'pytorch', 'cpu')
    with pytest.raises(ValueError, match='exported in: leave out --amp'):
        inference_dtype('auto', 'onnxruntime', 'cpu')


@pytest.mark.parametrize('tool', ['test', 'infer'])
def test_tools_refuse_amp_with_an_exported_file_or_fp16_on_a_cpu(
        tool, tmp_path, capsys):
    """One line and exit code 2, before any model is built (the files
    exist, the checks on them come after)."""
    main = load_tool(tool).main
    cases = [('model.onnx', ['--backend', 'onnxruntime', '--amp'],
              'error: --amp runs the PyTorch model; a onnxruntime file keeps '
              'the precision it was exported in: leave out --amp'),
             ('weights.pth', ['--amp', 'fp16'],
              'error: --amp fp16 needs a GPU; on a CPU autocast runs in '
              'bfloat16: give --amp or --amp bf16')]
    for name, options, message in cases:
        path = tmp_path / name
        path.write_bytes(b'')
        inputs = [str(path)] if tool == 'infer' else []
        assert main([DEMO_DET, str(path), *inputs, *options]) == 2
        assert capsys.readouterr().err.splitlines() == [message]


def _predict(config: str, image: str, dtype=None):
    """The data sample of ``config``'s model (initialised from the same
    seed) on ``image`` through tools/infer.py's inferencer, under ``dtype``
    autocast if given; the backbone's output dtypes."""
    infer = load_tool('infer')
    cfg = load_config(config)
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


@pytest.mark.parametrize('task', sorted(CONFIGS))
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
    sample, dtypes = _predict(CONFIGS[task], image, torch.bfloat16)
    assert dtypes == {torch.bfloat16}
    if task == 'det':
        names = {name for name, *_ in seen}
        assert names == {'decode', '_do_paste_mask'}, names
        assert {(d, on) for _, d, on in seen} == {(torch.float32, False)}
        pred = sample.pred_instances
        assert pred.bboxes.dtype == pred.scores.dtype == torch.float32
        assert pred.masks.dtype == torch.bool
    elif task == 'seg':
        assert sample.seg_logits.data.dtype == torch.float32
        # the same weights in float32: logits within bfloat16's rounding
        # of the features (8 significant bits, a few roundings deep)
        fp32, fp32_dtypes = _predict(CONFIGS[task], image)
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
