"""mmregionvit.benchmark and tools/benchmark.py: report fields, FLOP
counting and input checks.

Functional only: timings on a shared machine are not asserted.
"""
import json
import sys

import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from tool_helpers import ROOT, load_tool, run_script

from mmregionvit.benchmark import (UsageError, gemm, memory, runner, timing,
                                   workloads)
from mmregionvit.models import RegionViT, RegionViTClassifier
from mmregionvit.utils.complexity import count_macs

tool = load_tool('benchmark')

# One thread: on a shared machine two OpenMP threads can wait on each other
# for seconds per step.
FAST = ['--warmup', '1', '--gemm-size', '256', '--threads', '1']
MASKRCNN = str(ROOT / 'configs/detection/maskrcnn_regionvit_s_coco.py')
# Mask R-CNN at a fraction of its widths and RoI counts.
MINI_MASKRCNN = [
    'model.backbone.init_cfg=None',
    'model.backbone.arch=tiny',
    'model.neck.in_channels=[64,128,256,512]',
    'model.neck.out_channels=32',
    'model.rpn_head.in_channels=32',
    'model.rpn_head.feat_channels=32',
    'model.roi_head.bbox_roi_extractor.out_channels=32',
    'model.roi_head.mask_roi_extractor.out_channels=32',
    'model.roi_head.bbox_head.in_channels=32',
    'model.roi_head.bbox_head.fc_out_channels=64',
    'model.roi_head.mask_head.in_channels=32',
    'model.roi_head.mask_head.conv_out_channels=32',
    'model.train_cfg.rpn_proposal.max_per_img=100',
    'model.train_cfg.rcnn.sampler.num=64',
    'model.test_cfg.rpn.max_per_img=100',
]


@pytest.fixture(autouse=True)
def _keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def bench(argv: list) -> dict:
    """:func:`runner.run` on the arguments the command line parses."""
    return runner.run(tool.build_parser().parse_args(argv))


def check_workload(work: dict, repeat: int) -> None:
    lat = work['latency_ms']
    assert set(lat) == {
        'median', 'min', 'max', 'q1', 'q3', 'iqr', 'mean', 'std'
    }
    assert 0 < lat['min'] <= lat['q1'] <= lat['median'] <= lat['q3'] \
        <= lat['max']
    assert lat['iqr'] >= 0 and lat['std'] >= 0
    assert len(work['samples_ms']) == repeat
    assert work['first_iter_ms'] > 0
    assert work['images_per_s'] > 0
    assert work['gmacs'] > 0
    assert work['achieved_gflops_per_s'] > 0
    assert 0 < work['gemm_fp32_fraction'] < 10
    mem = work['memory']
    assert isinstance(mem['kind'], str)
    assert mem['peak_mb'] > 0 and mem['baseline_mb'] > 0
    assert mem['peak_delta_mb'] == pytest.approx(mem['peak_mb'] -
                                                 mem['baseline_mb'])
    assert all(isinstance(n, int) for n in work['uncounted_ops'].values())
    assert 'aten::scaled_dot_product_attention' not in work['uncounted_ops']
    assert all(isinstance(n, str) for n in work['notes'])


@pytest.mark.slow
def test_backbone_report(tmp_path):
    out = tmp_path / 'report.json'
    report = bench([
        'backbone', '--arch', 'tiny', '--input-size', '64', '64', '--repeat',
        '2', '--json',
        str(out), *FAST
    ])
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(report))
    assert (saved['mode'], saved['task'], saved['dtype'], saved['device']) \
        == ('backbone', 'inference', 'fp32', 'cpu')
    assert saved['input_size'] == [64, 64] and saved['batch'] == 1
    assert saved['threads'] == 1
    assert set(saved['load_avg_1min']) == {'before', 'after'}
    gemm = saved['gemm']['fp32']
    assert gemm['size'] == 256 and gemm['gflops_per_s'] > 0
    assert gemm['max'] >= gemm['gflops_per_s']
    [work] = saved['workloads']
    check_workload(work, repeat=2)
    assert work['step_flops_per_forward_mac'] == 2
    x = torch.randn(1, 3, 64, 64)
    macs, _ = count_macs(RegionViT(arch='tiny').eval(), (x, ))
    assert work['gmacs'] == macs / 1e9


@pytest.mark.slow
def test_backbone_compare_compile():
    """Eager (A) and compiled (B) alternate in one process."""
    torch._dynamo.reset()
    report = bench([
        'backbone', '--arch', 'tiny', '--input-size', '64', '64', '--repeat',
        '2', '--compare-compile', '--freezing', *FAST
    ])
    works = report['workloads']
    assert [w['name']
            for w in works] == ['RegionViT-tiny', 'RegionViT-tiny compiled']
    assert report['compare_compile'] and report['freezing']
    for work in works:
        check_workload(work, repeat=2)
    a, b = (w['latency_ms']['median'] for w in works)
    assert report['compare']['latency_ratio_b_over_a'] == pytest.approx(b / a)
    assert not torch._inductor.config.freezing  # restored


@pytest.mark.slow
def test_backbone_compare_fused():
    """The reference path (A) and the fused paths (B) alternate."""
    report = bench([
        'backbone', '--arch', 'tiny', '--input-size', '64', '64', '--repeat',
        '2', '--compare-fused', *FAST
    ])
    assert [w['name'] for w in report['workloads']
            ] == ['RegionViT-tiny reference', 'RegionViT-tiny']
    assert report['compare_fused']
    for work in report['workloads']:
        check_workload(work, repeat=2)


@pytest.mark.slow
def test_backbone_baseline_from_git(monkeypatch):
    """A git revision's backbone (A) is imported beside ours (B) under a
    renamed package, scope and op namespace."""
    built = []
    workload = runner.backbone_workload

    def spy(args, device, backbone=RegionViT, **kwargs):
        built.append(backbone)
        return workload(args, device, backbone=backbone, **kwargs)

    monkeypatch.setattr(runner, 'backbone_workload', spy)
    report = bench([
        'backbone', '--arch', 'tiny', '--input-size', '64', '64', '--repeat',
        '1', '--baseline', 'HEAD', *FAST
    ])
    assert [w['name'] for w in report['workloads']
            ] == ['RegionViT-tiny @HEAD', 'RegionViT-tiny']
    assert report['baseline'] == 'HEAD'
    baseline, ours = built
    assert ours is RegionViT
    assert baseline.__module__.startswith('mmregionvit_')
    assert baseline is not RegionViT
    # our timm classifiers stay registered under their names
    assert type(timm.create_model('regionvit_tiny_224')) is RegionViTClassifier


@pytest.mark.slow
def test_backbone_fp16_report():
    """fp16 autocast, compared with the fp32 and fp16 GEMM rates."""
    report = bench([
        'backbone', '--arch', 'tiny', '--input-size', '64', '64', '--repeat',
        '1', '--dtype', 'fp16', *FAST
    ])
    assert report['dtype'] == 'fp16'
    assert set(report['gemm']) == {'fp32', 'fp16'}
    [work] = report['workloads']
    check_workload(work, repeat=1)
    assert work['gemm_fp16_fraction'] > 0


@pytest.mark.parametrize('dtype, device, expected', [
    ('fp32', 'cpu', ['fp32']),
    ('bf16', 'cpu', ['fp32', 'bf16']),
    ('fp32', 'cuda', ['fp32', 'bf16']),
    ('fp16', 'cuda', ['fp32', 'fp16', 'bf16']),
])
def test_gemm_references(dtype, device, expected):
    """A GPU run is always compared with the bf16 matrix rate as well."""
    refs = gemm.gemm_references(dtype, torch.device(device))
    assert list(refs) == expected
    assert all(refs[k] == gemm.DTYPES[k] for k in expected)


@pytest.mark.slow
def test_backbone_against_timm():
    """RegionViT (A) against a timm model's feature maps (B) in one run."""
    report = bench([
        'backbone', '--arch', 'tiny', '--input-size', '64', '96', '--repeat',
        '1', '--task', 'train', '--compare-timm',
        'swin_tiny_patch4_window7_224', *FAST
    ])
    assert [w['name'] for w in report['workloads']
            ] == ['RegionViT-tiny', 'swin_tiny_patch4_window7_224']
    assert report['compare_timm'] == 'swin_tiny_patch4_window7_224'
    for work in report['workloads']:
        check_workload(work, repeat=1)
    swin = report['workloads'][1]
    assert any('features_only' in n for n in swin['notes'])
    assert report['compare']['ms_per_gmac_ratio_b_over_a'] > 0


@pytest.mark.slow
def test_compared_models_get_the_same_weights(monkeypatch):
    """Eager and compiled variants are built from the same seed."""
    draws = []

    def workload(path, args, device, compiled):
        draws.append((compiled, torch.rand(3).tolist()))
        return timing.Workload(f'{path.stem} {compiled}', lambda: None, 1, {})

    monkeypatch.setattr(runner, 'model_workload', workload)
    bench(['model', MASKRCNN, '--compare-compile', '--repeat', '1', *FAST])
    assert [c for c, _ in draws] == [False, True]
    assert draws[0][1] == draws[1][1]


class LinearAttention(nn.Module):
    """Three projections and one cross-attention: 2 heads, L=5, S=7."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(8, 16)  # head dim 8
        self.k = nn.Linear(8, 16)
        self.v = nn.Linear(8, 8)  # head dim 4

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.unflatten(-1, (2, -1)).transpose(1, 2)

        return F.scaled_dot_product_attention(
            heads(self.q(x)), heads(self.k(y)), heads(self.v(y)))


def test_count_macs_linear_and_sdpa():
    x, y = torch.randn(2, 5, 8), torch.randn(2, 7, 8)
    macs, uncounted = count_macs(LinearAttention(), (x, y))
    linear = 2 * 5 * 8 * 16 + 2 * 7 * 8 * 16 + 2 * 7 * 8 * 8
    attention = 2 * 2 * 5 * 7 * 8 + 2 * 2 * 5 * 7 * 4  # q @ k^T, attn @ v
    assert macs == linear + attention
    assert 'aten::scaled_dot_product_attention' not in uncounted


def test_latency_stats():
    stats = timing.latency_stats([0.004, 0.001, 0.003, 0.002, 0.005])
    assert stats['median'] == pytest.approx(3.0)
    assert (stats['min'], stats['max']) == pytest.approx((1.0, 5.0))
    assert (stats['q1'], stats['q3']) == pytest.approx((2.0, 4.0))
    assert stats['iqr'] == pytest.approx(2.0)
    single = timing.latency_stats([0.002])
    assert single['iqr'] == single['std'] == 0.0


def test_resolve_package_config():
    """``package::path`` is read from the package's ``.mim/configs``."""
    path = workloads.resolve_config(
        'mmregionvit::detection/maskrcnn_regionvit_s_coco.py')
    assert path.samefile(MASKRCNN)


@pytest.mark.parametrize('argv, message', [
    (['model', 'configs/nope.py'], 'config not found'),
    (['model', 'mmdet::nope/nope.py'], 'config not found'),
    (['model', 'nopkg::a/b.py'], "package 'nopkg' is not installed"),
    (['model'], 'one CONFIG or --compare'),
    (['model', MASKRCNN, '--compare', MASKRCNN, MASKRCNN
      ], 'one CONFIG or --compare'),
    (['backbone', '--repeat', '0'], 'must be >= 1: repeat'),
    (['backbone', '--threads', '0'], 'must be >= 1: threads'),
    (['backbone', '--device', 'cuda'], 'CUDA is not available'),
    (['backbone', '--live-memory', '--compile'], 'drop --compile'),
    (['backbone', '--compile', '--compare-compile'], 'drop --compile'),
    (['backbone', '--freezing'], 'add --compile or --compare-compile'),
    (['backbone', '--compile', '--freezing', '--task', 'train'
      ], '--task inference'),
    (['model', '--compare', MASKRCNN, MASKRCNN, '--compare-compile'
      ], 'use one of them'),
    (['backbone', '--compare-fused', '--baseline', 'HEAD'], 'use one of them'),
    (['backbone', '--compare-timm', 'no_such_net'], 'no such timm model'),
    ([
        'backbone', '--compare-timm', 'resnet18', '--arch', 'tiny',
        '--input-size', '64', '64', *FAST
    ], 'timm cannot build it'),
    (['backbone', '--compare-timm', 'resnet18', '--compare-compile'
      ], 'use one of them'),
    (['backbone', '--baseline', 'no-such-revision'], 'not a git revision'),
    (['backbone', '--compare-onnx', '--task', 'train'
      ], 'fp32 inference on the CPU'),
    (['backbone', '--compare-onnx', '--compare-fused'], 'use one of them'),
    (['backbone', '--compare-openvino', '--dtype', 'fp16'
      ], 'fp32 or bf16 inference on the CPU'),
    (['backbone', '--compare-openvino', '--compare-onnx'], 'use one of them'),
    ([
        'model', 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
        '--compare-fused'
    ], 'has no RegionViT backbone'),
    (['backbone', '--compare-official', '/nonexistent', *FAST
      ], 'no regionvit/regionvit.py there'),
    (['backbone', '--official', '.', '--compare-fused'
      ], 'drop --compare-fused'),
    (['backbone', '--official', '.', '--with-cp'], 'drop --with-cp'),
    (['backbone', '--compare-official', '.', '--baseline', 'HEAD'
      ], 'use one of them'),
])
def test_bad_input(argv, message, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(UsageError) as exc:
        bench(argv)
    assert message in str(exc.value)


@pytest.mark.parametrize('argv, message', [
    (['backbone', '--arch', 'huge'], 'invalid choice'),
    (['backbone', '--repeat', '0'], 'error: must be >= 1: repeat'),
])
def test_tool_bad_input(argv, message, capsys):
    """The command line reports wrong arguments as a usage error."""
    with pytest.raises(SystemExit) as exc:
        tool.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_tool_end_to_end(tmp_path):
    """python tools/benchmark.py prints the table and writes the report."""
    out = tmp_path / 'report.json'
    proc = run_script('benchmark', 'backbone', '--arch', 'tiny',
                      '--input-size', '64', '64', '--repeat', '1', '--json',
                      str(out), *FAST)
    assert proc.returncode == 0, proc.stderr
    [work] = json.loads(out.read_text())['workloads']
    assert work['name'] == 'RegionViT-tiny'
    assert 'median latency [ms]' in proc.stdout
    assert 'RegionViT-tiny' in proc.stdout


# A stand-in for a clone of the official code: registers a model name of
# ours with timm, as the official module does, and answers the detectron2
# wrapper's call with one map per stage
FAKE_OFFICIAL = """
import torch
import torch.nn as nn
from timm.models.registry import register_model


class RegionViT(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs
        self.conv = nn.Conv2d(3, kwargs['embed_dim'][1], 4, 4)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 2)

    def forward_features(self, x, detection=False):
        assert detection
        return [self.conv(x), self.conv(x)[..., ::2, ::2]]


@register_model
def regionvit_small_224(pretrained=False, **kwargs):
    return RegionViT(**kwargs)
"""


def test_official_backbone_from_a_clone(tmp_path):
    """The official module is imported from the clone and built with the
    variant's official arguments, detection norms on, without its head;
    timm's registry keeps our models."""
    from mmregionvit.benchmark.official import official_backbone
    from mmregionvit.models import VARIANTS
    (tmp_path / 'regionvit').mkdir()
    (tmp_path / 'regionvit' / '__init__.py').write_text('')
    (tmp_path / 'regionvit' / 'regionvit.py').write_text(FAKE_OFFICIAL)
    ours = timm.models.model_entrypoint('regionvit_small_224')
    try:
        model = official_backbone(tmp_path, 'small')
    finally:
        for name in [m for m in sys.modules if m.startswith('regionvit')]:
            del sys.modules[name]
    assert timm.models.model_entrypoint('regionvit_small_224') is ours
    assert model.model.kwargs == dict(VARIANTS['small'].arch, det_norm=True)
    assert not hasattr(model.model, 'head')
    assert not hasattr(model.model, 'norm')
    outs = model(torch.randn(1, 3, 32, 32))
    assert [o.shape[-1] for o in outs] == [8, 4]


def test_live_memory_sees_a_freed_allocation():
    in_use = memory.glibc_in_use()
    assert in_use is not None  # glibc >= 2.33 on the supported machines
    start = in_use()
    with memory.LiveMemory(in_use) as tracker:
        x = torch.ones(16 * 2**20)  # 64 MB, freed at once
        del x
    assert tracker.peak - start >= 64 * 2**20
    assert in_use() - start < 8 * 2**20


@pytest.mark.slow
def test_model_mode_train_mini_maskrcnn(tmp_path):
    out = tmp_path / 'report.json'
    bench([
        'model', MASKRCNN, '--task', 'train', '--input-size', '64', '96',
        '--repeat', '1', '--json',
        str(out), *FAST, '--live-memory', '--cfg-options', *MINI_MASKRCNN
    ])
    report = json.loads(out.read_text())
    assert (report['mode'], report['task']) == ('model', 'train')
    [work] = report['workloads']
    assert work['name'] == 'maskrcnn_regionvit_s_coco'
    check_workload(work, repeat=1)
    assert work['step_flops_per_forward_mac'] == 6
    live = work['memory']['live']
    # the extra step allocates at least its activations and gradients
    assert 0 < live['step_rise_mb'] <= live['peak_delta_mb']
    # mmcv's RoIAlign is a Python op the tracer cannot count; it is listed
    assert any('RoIAlign' in op for op in work['uncounted_ops'])


@pytest.mark.slow
def test_model_mode_compare(tmp_path):
    out = tmp_path / 'report.json'
    bench([
        'model', '--compare', MASKRCNN, MASKRCNN, '--input-size', '64', '96',
        '--repeat', '2', '--json',
        str(out), *FAST, '--cfg-options', *MINI_MASKRCNN,
        'model.test_cfg.rcnn.score_thr=0.0'
    ])
    report = json.loads(out.read_text())
    assert len(report['workloads']) == 2
    for work in report['workloads']:
        check_workload(work, repeat=2)
        # score_thr 0 pins the detections to max_per_img
        assert work['detections_per_image'] == 100
    compare = report['compare']
    assert compare['latency_ratio_b_over_a'] > 0
    assert len(compare['ms_per_gmac']) == 2
    assert compare['ms_per_gmac_ratio_b_over_a'] > 0


@pytest.mark.slow
@pytest.mark.parametrize('config, size, library',
                         [('segmentation/upernet_regionvit_t_ade20k.py',
                           ('64', '64'), 'mmseg'),
                          ('keypoint/td-hm_regionvit_t_coco-256x192.py',
                           ('64', '64'), 'mmpose')])
@pytest.mark.parametrize('task', ['inference', 'train'])
def test_model_mode_segmentation_and_keypoints(config, size, library, task,
                                               tmp_path):
    pytest.importorskip(library)
    out = tmp_path / 'report.json'
    bench([
        'model',
        str(ROOT / 'configs' / config), '--task', task, '--input-size', *size,
        '--batch', '2', '--repeat', '1', '--json',
        str(out), *FAST, '--cfg-options', 'model.backbone.init_cfg=None'
    ])
    [work] = json.loads(out.read_text())['workloads']
    check_workload(work, repeat=1)
    assert 'detections_per_image' not in work
    assert any(library == 'mmseg' and 'logits' in n
               or library == 'mmpose' and 'one forward' in n
               for n in work['notes'])


# runtime: its comparison, its workload's name, the options it is run with
RUNTIMES = {
    'onnxruntime': ('onnx', 'onnxruntime', []),
    'openvino': ('openvino', 'OpenVINO', ['--dtype', 'bf16']),
}


@pytest.mark.slow
@pytest.mark.parametrize('runtime', sorted(RUNTIMES))
@pytest.mark.parametrize('mode', ['backbone', 'model'])
def test_compare_onnx(mode, runtime, tmp_path):
    """PyTorch eager (A) against onnxruntime or OpenVINO (B, at bf16 with
    PyTorch under bf16 autocast) on the same input: the backbone, or a
    detector end to end."""
    pytest.importorskip(runtime)
    flag, label, extra = RUNTIMES[runtime]
    out = tmp_path / 'report.json'
    args = ['backbone', '--arch', 'tiny'
            ] if mode == 'backbone' else ['model', MASKRCNN]
    options = [] if mode == 'backbone' else ['--cfg-options', *MINI_MASKRCNN]
    bench([
        *args, f'--compare-{flag}', '--input-size', '64', '96', '--repeat',
        '2', '--json',
        str(out), *FAST, *extra, *options
    ])
    report = json.loads(out.read_text())
    assert report[f'compare_{flag}']
    names = [w['name'] for w in report['workloads']]
    stem = 'RegionViT-tiny' if mode == 'backbone' \
        else 'maskrcnn_regionvit_s_coco'
    assert names == [f'{stem} eager', f'{stem} {label}']
    if runtime == 'openvino':
        assert report['dtype'] == 'bf16'
        assert 'bf16 inference precision' in ' '.join(
            report['workloads'][1]['notes'])
    for work in report['workloads']:
        check_workload(work, repeat=2)
    assert report['workloads'][0]['gmacs'] == report['workloads'][1]['gmacs']
