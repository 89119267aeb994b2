#!/usr/bin/env python
"""Latency, throughput, memory and FLOP efficiency of backbones and models.

Examples::

    python tools/benchmark.py backbone --arch small
    python tools/benchmark.py backbone --arch small --task train --batch 2 \
        --with-cp
    python tools/benchmark.py backbone --arch small --compare-compile
    python tools/benchmark.py backbone --arch small --compare-fused
    python tools/benchmark.py backbone --arch small --compare-onnx
    python tools/benchmark.py model --compare-onnx \
        configs/detection/retinanet_regionvit_s_coco.py
    python tools/benchmark.py backbone --arch small --baseline HEAD~1
    python tools/benchmark.py backbone --arch small --device cuda \
        --dtype bf16 --batch 8 --compare-timm swin_tiny_patch4_window7_224
    python tools/benchmark.py model \
        configs/detection/maskrcnn_regionvit_s_coco.py --task train
    python tools/benchmark.py model --compare \
        configs/detection/maskrcnn_regionvit_s_coco.py \
        mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py
    python tools/benchmark.py model \
        configs/segmentation/upernet_regionvit_s_ade20k.py --input-size 512 512
    python tools/benchmark.py model \
        configs/keypoint/td-hm_regionvit_s_coco-256x192.py --input-size 256 192

Units: a MAC is one multiply-add, which OpenMMLab and fvcore tables call one
"FLOP". Rates (the model's achieved rate and the GEMM rate) count 2 FLOPs per
MAC, so the fraction of the GEMM rate compares like with like.
"""
import argparse
import ctypes
import importlib
import importlib.util
import io
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, List, Optional, Tuple

import numpy as np
import timm
import torch
from mmengine.config import Config, DictAction
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode

from mmregionvit.models import VARIANTS, RegionViT
from mmregionvit.utils.complexity import TensorMode, count_macs
from mmregionvit.utils.config import (INPUT_SIZES, default_input_size,
                                      read_config)
from mmregionvit.utils.preflight import PreflightError, check_channels
from mmregionvit.utils.quiet import quiet_upstream_noise

MB = 2**20
# backbone mode's input size (H, W) unless --input-size; model mode takes
# its config's task's (mmregionvit.utils.config.default_input_size)
BACKBONE_INPUT_SIZE = (672, 1120)
# --dtype: the autocast dtype, and the name of its GEMM reference
DTYPES = dict(fp32=torch.float32, bf16=torch.bfloat16, fp16=torch.float16)


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes, device work included."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def measure_gemm(size: int,
                 dtype: torch.dtype,
                 device: torch.device,
                 repeat: int = 5) -> List[float]:
    """GFLOP/s (2 per MAC) of ``repeat`` square ``size`` matmuls."""
    a, b = (
        torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty_like(a)
    torch.mm(a, b, out=out)  # warm-up
    return [
        2 * size**3 / _timed(partial(torch.mm, a, b, out=out), device) / 1e9
        for _ in range(repeat)
    ]


def gemm_references(dtype: str,
                    device: torch.device) -> Dict[str, torch.dtype]:
    """The GEMM rates a run is compared with: fp32's and its own dtype's,
    and on CUDA always bf16's (a GPU's matrix rate, whatever the run's
    dtype)."""
    names = ['fp32', dtype] + (['bf16'] if device.type == 'cuda' else [])
    return {name: DTYPES[name] for name in dict.fromkeys(names)}


def _rss() -> int:
    """Resident set size of this process in bytes (Linux ``/proc``)."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


class PeakMemory:
    """Peak memory of the steps bracketed by :meth:`begin` and :meth:`end`.

    CUDA: the caching allocator's peak of allocated tensor memory. CPU: the
    process RSS sampled every ``interval`` seconds by a background thread;
    memory the C allocator keeps after a free counts, spikes shorter than the
    interval can be missed.
    """

    def __init__(self, device: torch.device, interval: float = 0.005) -> None:
        self.device = device
        self.kind = ('cuda max_memory_allocated' if device.type == 'cuda' else
                     f'process RSS sampled every {interval * 1e3:g} ms')
        self._peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if device.type == 'cpu':
            self._thread = threading.Thread(
                target=self._sample, args=(interval, ), daemon=True)
            self._thread.start()

    def _sample(self, interval: float) -> None:
        while not self._stop.wait(interval):
            rss = _rss()
            with self._lock:
                self._peak = max(self._peak, rss)

    def current(self) -> int:
        if self.device.type == 'cuda':
            return torch.cuda.memory_allocated(self.device)
        return _rss()

    def begin(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        with self._lock:
            self._peak = _rss()

    def end(self) -> int:
        if self.device.type == 'cuda':
            return torch.cuda.max_memory_allocated(self.device)
        rss = _rss()
        with self._lock:
            return max(self._peak, rss)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd',
                     'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')
    ]


def _glibc_in_use() -> Optional[Callable[[], int]]:
    """Bytes glibc's malloc has handed out and not had back (all arenas,
    heap and mmapped chunks), or None without glibc >= 2.33."""
    try:
        mallinfo2 = ctypes.CDLL('libc.so.6').mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2

    def in_use() -> int:
        info = mallinfo2()
        return info.uordblks + info.hblkhd

    return in_use


class LiveMemory(TorchDispatchMode):
    """Peak of the memory the C allocator has handed out and not had back,
    read after every aten op: on a CPU the counterpart of CUDA's
    ``max_memory_allocated``, free of what the allocator keeps after a free
    (which RSS counts). Slow (a heap walk per op): for an extra, untimed
    step."""

    def __init__(self, in_use: Callable[[], int]) -> None:
        super().__init__()
        self.in_use = in_use
        self.peak = in_use()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.peak = max(self.peak, self.in_use())
        return out


@dataclass
class Workload:
    """One thing to time: ``step()`` runs one inference or training step."""
    name: str
    step: Callable[[], None]
    macs: int
    uncounted_ops: Dict[str, int]
    notes: List[str] = field(default_factory=list)
    extra: Dict[str, Any] = field(default_factory=dict)


def _step_context(args: argparse.Namespace,
                  device: torch.device) -> Callable[[], ContextManager]:
    """Autocast for ``--dtype bf16`` or ``fp16``; the attention kernel for
    ``--attention materialised`` (SDPA's math kernel, which builds and, when
    training, keeps every attention matrix: the reference for memory)."""

    def context() -> ContextManager:
        stack = ExitStack()
        if args.dtype != 'fp32':
            stack.enter_context(
                torch.autocast(device.type, dtype=DTYPES[args.dtype]))
        if args.attention == 'materialised':
            stack.enter_context(sdpa_kernel(SDPBackend.MATH))
        return stack

    return context


def load_baseline(rev: str) -> type:
    """The ``RegionViT`` class of git revision ``rev`` of this checkout,
    imported beside ours: its package is extracted to a temporary folder
    and renamed (scope and op namespace included) so that both register."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ['git', 'rev-parse', '--verify', rev + '^{commit}'],
            cwd=root,
            capture_output=True,
            text=True,
            check=True).stdout.strip()
        archive = subprocess.run(['git', 'archive', sha, 'mmregionvit'],
                                 cwd=root,
                                 capture_output=True,
                                 check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise ValueError(f'--baseline {rev}: not a git revision of {root} '
                         f'({getattr(e, "stderr", e) or e})') from e
    name = f'mmregionvit_{sha[:10]}'
    folder = Path(tempfile.mkdtemp(prefix='regionvit-baseline-'))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter='data')
    (folder / 'mmregionvit').rename(folder / name)
    for path in (folder / name).rglob('*.py'):
        path.write_text(re.sub(r'\bmmregionvit\b', name, path.read_text()))
    # timm's registry is global and keyed by model name alone: the copy
    # must not replace our classifiers there.
    timm_models = folder / name / 'models' / 'timm_models.py'
    if timm_models.exists():
        timm_models.write_text("'''Not registered with timm: a baseline.'''\n")
    sys.path.insert(0, str(folder))
    return importlib.import_module(f'{name}.models').RegionViT


def timm_features(name: str, input_size: Tuple[int, int],
                  with_cp: bool) -> torch.nn.Module:
    """timm model ``name`` as a backbone: its feature maps
    (``features_only``), built for ``input_size``, random weights."""
    try:
        model = timm.create_model(
            name, pretrained=False, features_only=True, img_size=input_size)
    except (TypeError, RuntimeError, AssertionError) as e:
        raise ValueError(f'--compare-timm {name}: timm cannot build it with '
                         f'features_only=True, img_size={input_size}: '
                         f'{e}') from e
    if with_cp:
        model.set_grad_checkpointing()
    return model


def backbone_workload(args: argparse.Namespace,
                      device: torch.device,
                      compiled: bool,
                      fused: bool = True,
                      backbone: type = RegionViT,
                      label: str = '',
                      timm_model: Optional[str] = None) -> Workload:
    """A RegionViT backbone (or the feature maps of timm model
    ``timm_model``) on a random batch; training uses AdamW."""
    h, w = args.input_size
    if timm_model:
        model = timm_features(timm_model, (h, w), args.with_cp)
        notes = [f'timm {timm_model}: features_only, img_size=({h}, {w})']
    else:
        kwargs = dict(arch=args.arch, with_cp=args.with_cp)
        if not fused:
            kwargs['fused'] = False
        model = backbone(**kwargs)
        notes = ['constructor defaults otherwise (det_norm on, no drop path)']
    model.to(device)
    x = torch.randn(args.batch, 3, h, w, device=device)
    macs, uncounted = count_macs(model.eval(), (x, ))
    net = torch.compile(model) if compiled else model
    amp = _step_context(args, device)
    if args.task == 'inference':

        def step() -> None:
            with torch.no_grad(), amp():
                net(x)
    else:
        model.train()
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=1e-4, weight_decay=0.05)
        notes.append('train step: forward, loss = sum of output means, '
                     'backward, AdamW step')

        def step() -> None:
            with amp():
                loss = sum(out.float().mean() for out in net(x))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    name = timm_model or f'RegionViT-{args.arch}{label}'
    name += ' compiled' if compiled else ''
    if not fused:
        name += ' reference'
    return Workload(name, step, macs, uncounted, notes)


def resolve_config(spec: str) -> Path:
    """A config file, or ``package::relative.py`` of an OpenMMLab package."""
    if '::' in spec:
        package, rel = spec.split('::', 1)
        found = importlib.util.find_spec(package)
        if found is None or found.origin is None:
            raise FileNotFoundError(f'config {spec!r}: package {package!r} '
                                    'is not installed')
        path = Path(found.origin).parent / '.mim' / 'configs' / rel
    else:
        path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f'config not found: {spec!r} ({path})')
    return path


def _random_images(batch: int, h: int, w: int, device: torch.device,
                   gen: torch.Generator) -> List[torch.Tensor]:
    return [
        torch.randint(0, 256, (3, h, w), dtype=torch.uint8,
                      generator=gen).to(device) for _ in range(batch)
    ]


def synthetic_det_batch(batch: int,
                        h: int,
                        w: int,
                        device: torch.device,
                        with_gt: bool,
                        num_gt: int = 5) -> dict:
    """Random uint8 images on ``device`` with test-pipeline metainfo.

    With ``with_gt``, each image gets ``num_gt`` random boxes (label 0) and
    box-shaped bitmap masks.
    """
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    gen = torch.Generator().manual_seed(0)
    scale = torch.tensor([w, h], dtype=torch.float32)
    inputs, samples = _random_images(batch, h, w, device, gen), []
    for _ in range(batch):
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
        if with_gt:
            xy = 0.5 * scale * torch.rand(num_gt, 2, generator=gen)
            wh = (0.1 + 0.4 * torch.rand(num_gt, 2, generator=gen)) * scale
            boxes = torch.cat([xy, xy + wh], dim=1)
            masks = np.zeros((num_gt, h, w), dtype=np.uint8)
            for mask, (x1, y1, x2, y2) in zip(masks,
                                              boxes.round().int().tolist()):
                mask[y1:y2, x1:x2] = 1
            sample.gt_instances = InstanceData(
                bboxes=HorizontalBoxes(boxes.to(device)),
                labels=torch.zeros(num_gt, dtype=torch.long, device=device),
                masks=BitmapMasks(masks, h, w))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def synthetic_seg_batch(batch: int, h: int, w: int, device: torch.device,
                        with_gt: bool, num_classes: int) -> dict:
    """Random uint8 images and (with ``with_gt``) random label maps."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    gen = torch.Generator().manual_seed(0)
    inputs, samples = _random_images(batch, h, w, device, gen), []
    for _ in range(batch):
        sample = SegDataSample(
            metainfo=dict(
                img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
        if with_gt:
            sample.gt_sem_seg = PixelData(
                data=torch.randint(0, num_classes, (
                    1, h, w), generator=gen).to(device))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def synthetic_pose_batch(batch: int, h: int, w: int, device: torch.device,
                         with_gt: bool, num_keypoints: int,
                         heatmap_size: Tuple[int, int]) -> dict:
    """Random uint8 top-down crops, each the whole of one instance box; with
    ``with_gt``, random target heatmaps of ``heatmap_size`` (w, h)."""
    from mmengine.structures import InstanceData, PixelData
    from mmpose.structures import PoseDataSample

    gen = torch.Generator().manual_seed(0)
    inputs, samples = _random_images(batch, h, w, device, gen), []
    for _ in range(batch):
        sample = PoseDataSample(
            metainfo=dict(
                img_shape=(h, w),
                ori_shape=(h, w),
                input_size=(w, h),
                input_center=np.array([w / 2, h / 2], np.float32),
                input_scale=np.array([w, h], np.float32),
                flip_indices=list(range(num_keypoints))))
        sample.gt_instances = InstanceData(
            bboxes=np.array([[0, 0, w, h]], np.float32),
            bbox_scores=np.ones(1, np.float32))
        if with_gt:
            hw, hh = heatmap_size
            sample.gt_fields = PixelData(
                heatmaps=torch.rand(num_keypoints, hh, hw, generator=gen).to(
                    device))
            sample.gt_instance_labels = InstanceData(
                keypoint_weights=torch.ones(1, num_keypoints, device=device))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _synthetic_batch(cfg: Config, scope: str, args: argparse.Namespace,
                     device: torch.device) -> Tuple[dict, str]:
    """The batch for the config's library, and what its step produces."""
    h, w = args.input_size
    train = args.task == 'train'
    if scope == 'mmdet':
        return synthetic_det_batch(args.batch, h, w, device, train), \
            'RoI heads on all RPN proposals, mask head on the first 100'
    if scope == 'mmseg':
        num_classes = cfg.model.decode_head.num_classes
        return synthetic_seg_batch(args.batch, h, w, device, train,
                                   num_classes), \
            f'{num_classes}-class logits'
    if scope == 'mmpose':
        head = cfg.model.head
        # the codec's heatmap stride, at this input size
        (cw, ch), (hw, hh) = head.decoder.input_size, head.decoder.heatmap_size
        heatmap_size = (w * hw // cw, h * hh // ch)
        return synthetic_pose_batch(args.batch, h, w, device, train,
                                    head.out_channels, heatmap_size), \
            'one forward (flip test not counted)'
    raise ValueError(f'model mode supports mmdet, mmseg and mmpose configs, '
                     f'got default_scope={scope!r}')


def load_model_config(path: Path, cfg_options: Optional[dict]) -> Config:
    cfg = read_config(str(path))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def model_workload(path: Path,
                   args: argparse.Namespace,
                   device: torch.device,
                   compiled: bool,
                   fused: bool = True) -> Workload:
    """An mmdet, mmseg or mmpose model's test step, or train step with its
    optimizer, on synthetic data."""
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, init_default_scope

    cfg = load_model_config(path, args.cfg_options)
    if args.with_cp:
        cfg.model.backbone.with_cp = True
    if not fused:
        if not str(cfg.model.backbone.type).endswith('RegionViT'):
            raise ValueError(f'--compare-fused: {path} has no RegionViT '
                             'backbone')
        cfg.model.backbone.fused = False
    scope = cfg.get('default_scope', 'mmdet')
    if scope == 'mmseg' and cfg.model.data_preprocessor.get('size'):
        # training pads to the preprocessor's crop size: pad to the input
        # size instead, so that train and FLOP counts use the same size
        cfg.model.data_preprocessor.size = tuple(args.input_size)
    init_default_scope(scope)
    data, counted = _synthetic_batch(cfg, scope, args, device)
    model = MODELS.build(cfg.model)
    model.to(device)
    model.eval()
    with torch.no_grad():
        packed = model.data_preprocessor(data, False)
    macs, uncounted = count_macs(
        TensorMode(model, packed['data_samples']), (packed['inputs'], ))
    notes = [
        'random weights (init_weights not called); synthetic uint8 '
        'images already on the device, data preprocessor timed',
        f"GMACs of mode='tensor' (OpenMMLab get_flops convention): "
        f'{counted}'
    ]
    extra: Dict[str, Any] = {}
    amp = _step_context(args, device)
    if args.task == 'train':
        # quiet the per-parameter paramwise_cfg log lines
        MMLogger.get_current_instance().setLevel(logging.WARNING)
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        model.train()
        notes.append('train step: preprocessor, loss, backward and '
                     f'{type(optim_wrapper.optimizer).__name__} step from '
                     'the config; random targets')

        def step() -> None:
            with optim_wrapper.optim_context(model), amp():
                losses = model(
                    **model.data_preprocessor(data, True), mode='loss')
                loss, _ = model.parse_losses(losses)
            optim_wrapper.update_params(loss)
    else:

        def step() -> None:
            with torch.no_grad(), amp():
                results = model.test_step(data)
            if scope == 'mmdet':
                extra['detections_per_image'] = sum(
                    len(r.pred_instances) for r in results) / len(results)

    name = path.stem
    if compiled:
        model.backbone = torch.compile(model.backbone)
        notes.append('torch.compile applied to the backbone only')
        name += ' compiled'
    return Workload(name, step, macs, uncounted, notes, extra)


def onnx_workloads(args: argparse.Namespace,
                   config: Optional[Path]) -> List[Workload]:
    """PyTorch eager (A) and onnxruntime (B) computing the same thing on the
    same input: the backbone, or what tools/export_onnx.py exports of a
    model (a detector end to end, NMS included; a segmentor's logits; a
    pose model's heatmaps), the file exported with dynamic sizes."""
    from mmengine.registry import MODELS, init_default_scope

    from mmregionvit.deploy import export as onnx_export
    if config is None:
        model = RegionViT(arch=args.arch).eval()
        graph = onnx_export.backbone_graph(model)
        x = torch.randn(args.batch, 3, *args.input_size)
        macs, uncounted = count_macs(model, (x, ))
        name = f'RegionViT-{args.arch}'
    else:
        cfg = load_model_config(config, args.cfg_options)
        scope = cfg.get('default_scope', 'mmdet')
        init_default_scope(scope)
        data, _ = _synthetic_batch(cfg, scope, args, torch.device('cpu'))
        cfg.model.backbone.init_cfg = None
        model = MODELS.build(cfg.model).eval()
        with torch.no_grad():
            packed = model.data_preprocessor(data, False)
        macs, uncounted = count_macs(
            TensorMode(model, packed['data_samples']), (packed['inputs'], ))
        h, w = args.input_size  # detectors pad inside the graph
        x = packed['inputs'][..., :h, :w]
        graph = onnx_export.model_graph(model, scope)
        name = config.stem
    with tempfile.TemporaryDirectory(prefix='regionvit-onnx-') as folder:
        path = os.path.join(folder, 'model.onnx')
        onnx_export.export(graph, x, path)
        sess = onnx_export.session(path, threads=torch.get_num_threads())
    feed = {onnx_export.INPUT: x.numpy()}
    import onnxruntime

    def eager() -> None:
        with torch.no_grad():
            graph.module(x)

    notes = [
        'the same computation: backbone, or the exported graph (detectors '
        'end to end with NMS, masks unpasted); random weights'
    ]
    ort_notes = notes + [
        f'onnxruntime {onnxruntime.__version__} CPU, '
        f'{torch.get_num_threads()} intra-op threads, dynamic-size file'
    ]
    return [
        Workload(f'{name} eager', eager, macs, uncounted, notes),
        Workload(f'{name} onnxruntime', partial(sess.run, None, feed), macs,
                 uncounted, ort_notes)
    ]


def latency_stats(seconds: List[float]) -> Dict[str, float]:
    """Median and spread in milliseconds."""
    ms = sorted(t * 1e3 for t in seconds)
    q1, _, q3 = (
        statistics.quantiles(ms, n=4, method='inclusive') if len(ms) > 1 else
        (ms[0], ms[0], ms[0]))
    return dict(
        median=statistics.median(ms),
        min=ms[0],
        max=ms[-1],
        q1=q1,
        q3=q3,
        iqr=q3 - q1,
        mean=statistics.fmean(ms),
        std=statistics.stdev(ms) if len(ms) > 1 else 0.0)


def time_workloads(workloads: List[Workload], warmup: int, repeat: int,
                   device: torch.device, live: bool) -> List[Dict[str, Any]]:
    """Warm each workload up, then time them alternating per repeat; with
    ``live``, one more step each under :class:`LiveMemory`."""
    memory = PeakMemory(device)
    in_use = _glibc_in_use() if live else None
    try:
        baseline = memory.current()
        live_baseline = in_use() if in_use else 0
        first = []
        for work in workloads:
            first.append(_timed(work.step, device))
            for _ in range(warmup - 1):
                work.step()
        times: List[List[float]] = [[] for _ in workloads]
        peaks = [0] * len(workloads)
        for _ in range(repeat):
            for i, work in enumerate(workloads):
                memory.begin()
                times[i].append(_timed(work.step, device))
                peaks[i] = max(peaks[i], memory.end())
        lives = []
        if in_use:
            for work in workloads:
                start = in_use()
                with LiveMemory(in_use) as tracker:
                    work.step()
                lives.append(
                    dict(
                        peak_delta_mb=(tracker.peak - live_baseline) / MB,
                        step_rise_mb=(tracker.peak - start) / MB))
    finally:
        memory.close()
    results = [
        dict(
            first_iter_ms=f * 1e3,
            latency_ms=latency_stats(t),
            samples_ms=[x * 1e3 for x in t],
            memory=dict(
                kind=memory.kind,
                baseline_mb=baseline / MB,
                peak_mb=p / MB,
                peak_delta_mb=(p - baseline) / MB))
        for f, t, p in zip(first, times, peaks)
    ]
    for result, live_memory in zip(results, lives):
        result['memory']['live'] = live_memory
    return results


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        '--input-size',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='default: %d %d for a backbone; for a model its task\'s, as '
        'tools/get_flops.py and tools/export_onnx.py take it (%s)' %
        (*BACKBONE_INPUT_SIZE, ', '.join(
            f'{scope} {h} {w}' for scope, (h, w) in INPUT_SIZES.items())))
    common.add_argument('--batch', type=int, default=1)
    common.add_argument(
        '--task', choices=['inference', 'train'], default='inference')
    common.add_argument(
        '--dtype',
        choices=sorted(DTYPES),
        default='fp32',
        help='bf16, fp16: torch.autocast to that dtype (fp16 training '
        'without loss scaling)')
    common.add_argument(
        '--compile', action='store_true', help='torch.compile the backbone')
    common.add_argument(
        '--compare-compile',
        action='store_true',
        help='time eager (A) against torch.compile (B), '
        'alternating in one process')
    common.add_argument(
        '--compare-fused',
        action='store_true',
        help='time the reference path (A, fused=False) against the fused '
        'fast paths (B), alternating in one process')
    common.add_argument(
        '--compare-onnx',
        action='store_true',
        help='time PyTorch eager (A) against onnxruntime running the '
        'exported file (B), alternating in one process (CPU, fp32 '
        'inference)')
    common.add_argument(
        '--freezing',
        action='store_true',
        help="inference with --compile or --compare-compile:"
        " Inductor's freezing (weights become constants)")
    common.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    common.add_argument(
        '--threads',
        type=int,
        help="torch intra-op threads (default: torch's, "
        f'{torch.get_num_threads()} here)')
    common.add_argument(
        '--warmup',
        type=int,
        default=2,
        help='untimed steps first (>= 1; the first one pays '
        'allocation and compilation)')
    common.add_argument('--repeat', type=int, default=10)
    common.add_argument(
        '--attention',
        choices=['fused', 'materialised'],
        default='fused',
        help='materialised: SDPA math kernel, which stores '
        'attention matrices (a memory reference)')
    common.add_argument(
        '--with-cp',
        action='store_true',
        help='gradient checkpointing in the backbone')
    common.add_argument(
        '--gemm-size',
        type=int,
        help='square matmul size for the reference rate '
        '(default 2048 on CPU, 8192 on CUDA)')
    common.add_argument(
        '--live-memory',
        action='store_true',
        help='CPU: one more, untimed step that records the '
        "peak of glibc malloc's in-use bytes after every op "
        '(what RSS shows minus memory malloc keeps after '
        'frees)')
    common.add_argument('--json', type=Path, metavar='PATH')

    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    modes = parser.add_subparsers(dest='mode', required=True)
    backbone = modes.add_parser(
        'backbone', parents=[common], help='a RegionViT backbone by arch name')
    backbone.add_argument('--arch', choices=sorted(VARIANTS), default='small')
    backbone.add_argument(
        '--baseline',
        metavar='REV',
        help='time the backbone of git revision REV of this checkout (A) '
        'against the working tree\'s (B), alternating in one process')
    backbone.add_argument(
        '--compare-timm',
        metavar='MODEL',
        help="time the RegionViT backbone (A) against timm model MODEL's "
        'feature maps (B: features_only, built for --input-size, random '
        'weights), alternating in one process, e.g. '
        'swin_tiny_patch4_window7_224')
    model = modes.add_parser(
        'model',
        parents=[common],
        help='an mmdet, mmseg or mmpose model from a '
        'config')
    model.add_argument(
        'config',
        nargs='?',
        help='config path or package::path, e.g. '
        'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py')
    model.add_argument(
        '--compare',
        nargs=2,
        metavar=('CONFIG_A', 'CONFIG_B'),
        help='time two configs alternating A, B per repeat')
    model.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, key=value (both '
        'configs with --compare)')
    return parser


def validate(parser: argparse.ArgumentParser,
             args: argparse.Namespace) -> Tuple[torch.device, List[Path]]:
    """Check the arguments; return the device and the config paths."""
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device cuda: CUDA is not available (torch '
                     f'{torch.__version__}, CUDA build {torch.version.cuda}, '
                     f'{torch.cuda.device_count()} devices visible)')
    if args.device == 'cpu' and not Path('/proc/self/statm').exists():
        parser.error('CPU memory sampling needs Linux /proc/self/statm')
    counts = dict(
        batch=args.batch,
        warmup=args.warmup,
        repeat=args.repeat,
        threads=args.threads,
        gemm_size=args.gemm_size,
        input_size=min(args.input_size or BACKBONE_INPUT_SIZE))
    bad = [k for k, v in counts.items() if v is not None and v < 1]
    if bad:
        parser.error(f'must be >= 1: {", ".join(bad)}')
    comparisons = [
        f'--{k.replace("_", "-")}'
        for k in ('compare', 'compare_compile', 'compare_fused', 'baseline',
                  'compare_timm', 'compare_onnx') if getattr(args, k, None)
    ]
    if len(comparisons) > 1:
        parser.error(f'{" and ".join(comparisons)} each time two workloads; '
                     'use one of them')
    compiling = args.compile or args.compare_compile
    if args.compile and args.compare_compile:
        parser.error('--compare-compile times eager and compiled; drop '
                     '--compile')
    if args.freezing and (not compiling or args.task != 'inference'):
        parser.error('--freezing applies to compiled inference: add '
                     '--compile or --compare-compile, and --task inference')
    if args.live_memory and (args.device != 'cpu' or compiling):
        parser.error('--live-memory measures eager CPU steps (on CUDA the '
                     'peak is already allocated memory); drop --compile / '
                     '--compare-compile or --device cuda')
    if args.live_memory and _glibc_in_use() is None:
        parser.error('--live-memory needs glibc >= 2.33 (mallinfo2)')
    if args.compare_onnx and (args.device != 'cpu' or compiling
                              or args.task != 'inference'
                              or args.dtype != 'fp32' or args.with_cp):
        parser.error('--compare-onnx times fp32 inference on the CPU: drop '
                     '--device cuda, --compile, --task train, --dtype '
                     'and --with-cp')
    if args.mode == 'backbone':
        if args.compare_timm and not timm.is_model(args.compare_timm):
            parser.error(f'--compare-timm {args.compare_timm}: no such timm '
                         f'model (timm {timm.__version__}; timm.list_models()'
                         ' lists them)')
        args.input_size = args.input_size or list(BACKBONE_INPUT_SIZE)
        return torch.device(args.device), []
    if bool(args.config) == bool(args.compare):
        parser.error('model mode takes one CONFIG or --compare CONFIG_A '
                     'CONFIG_B')
    try:
        paths = [resolve_config(c) for c in args.compare or [args.config]]
        cfgs = [load_model_config(p, args.cfg_options) for p in paths]
        for cfg in cfgs:  # the model checks train.py and test.py run
            check_channels(cfg.model)
        sizes = {
            default_input_size(cfg.get('default_scope', 'mmdet'))
            for cfg in cfgs
        }
    except (FileNotFoundError, PreflightError, ValueError) as e:
        parser.error(str(e))
    if args.input_size is None:
        if len(sizes) > 1:
            parser.error('--compare: the configs are of different tasks; '
                         'give the --input-size H W to measure both at')
        args.input_size = list(sizes.pop())
    return torch.device(args.device), paths


def _device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    with open('/proc/cpuinfo') as f:
        names = [
            line.split(':', 1)[1].strip() for line in f
            if line.startswith('model name')
        ]
    return f'{names[0] if names else "CPU"} ({os.cpu_count()} logical CPUs)'


def summarize(args: argparse.Namespace, device: torch.device,
              workloads: List[Workload], timings: List[Dict[str, Any]],
              gemm: Dict[str, Dict[str, Any]],
              load: Tuple[float, float]) -> Dict[str, Any]:
    """The JSON report."""
    factor = 3 if args.task == 'train' else 1
    results = []
    for work, timing in zip(workloads, timings):
        median_s = timing['latency_ms']['median'] / 1e3
        achieved = 2 * factor * work.macs / median_s / 1e9
        res = dict(
            name=work.name,
            **timing,
            images_per_s=args.batch / median_s,
            gmacs=work.macs / 1e9,
            step_flops_per_forward_mac=2 * factor,
            achieved_gflops_per_s=achieved,
            uncounted_ops=work.uncounted_ops,
            notes=work.notes,
            **work.extra)
        for dtype, ref in gemm.items():
            res[f'gemm_{dtype}_fraction'] = achieved / ref['gflops_per_s']
        results.append(res)
    warnings = []
    cpus = os.cpu_count() or 1
    if load[0] >= cpus:
        warnings.append(
            f'1-min load average {load[0]:.1f} on {cpus} CPUs '
            'before the run: the machine is shared, timings are '
            'indicative' +
            ('; busy cores stall multi-threaded steps, '
             '--threads 1 is steadier' if torch.get_num_threads() > 1 else ''))
    for dtype, g in gemm.items():
        lo, hi = sorted((g['median_before'], g['median_after']))
        if hi > 1.2 * lo:
            warnings.append(f'{dtype} GEMM rate moved from '
                            f'{g["median_before"]:.0f} to '
                            f'{g["median_after"]:.0f} GFLOP/s during the run')
    dets = [
        r['detections_per_image'] for r in results
        if 'detections_per_image' in r
    ]
    if dets and (min(dets) == 0 or len(set(dets)) > 1):
        warnings.append(
            f'detections/image {dets} with random weights; the mask head runs '
            'per detection, so its cost varies: pin it to max_per_img with '
            '--cfg-options model.test_cfg.rcnn.score_thr=0.0 (two-stage) or '
            'model.test_cfg.score_thr=0.0 (one-stage)')
    report = dict(
        mode=args.mode,
        task=args.task,
        dtype=args.dtype,
        device=device.type,
        device_name=_device_name(device),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        float32_matmul_precision=torch.get_float32_matmul_precision(),
        batch=args.batch,
        input_size=list(args.input_size),
        warmup=args.warmup,
        repeat=args.repeat,
        compile=args.compile,
        compare_compile=args.compare_compile,
        compare_fused=args.compare_fused,
        compare_onnx=args.compare_onnx,
        baseline=getattr(args, 'baseline', None),
        compare_timm=getattr(args, 'compare_timm', None),
        freezing=args.freezing,
        with_cp=args.with_cp,
        load_avg_1min=dict(before=load[0], after=load[1]),
        gemm=gemm,
        workloads=results,
        warnings=warnings)
    if len(results) == 2:
        a, b = (r['latency_ms']['median'] for r in results)
        per_a, per_b = (
            r['latency_ms']['median'] / r['gmacs'] for r in results)
        report['compare'] = dict(
            latency_ratio_b_over_a=b / a,
            ms_per_gmac=[per_a, per_b],
            ms_per_gmac_ratio_b_over_a=per_b / per_a)
    return report


def print_report(report: Dict[str, Any]) -> None:
    """The report as a table, one column per workload."""
    works = report['workloads']
    h, w = report['input_size']
    rows: List[Tuple[str, List[str]]] = [('', [
        f'{chr(65 + i)}: {r["name"]}' if len(works) > 1 else r['name']
        for i, r in enumerate(works)
    ])]

    def row(label: str, fn: Callable[[dict], str]) -> None:
        rows.append((label, [fn(r) for r in works]))

    row('median latency [ms]', lambda r: f'{r["latency_ms"]["median"]:.1f}')
    row('min / max [ms]',
        lambda r: '{min:.1f} / {max:.1f}'.format(**r['latency_ms']))
    row('IQR / std [ms]',
        lambda r: '{iqr:.1f} / {std:.1f}'.format(**r['latency_ms']))
    row('first iteration [ms]', lambda r: f'{r["first_iter_ms"]:.0f}')
    row('images/s', lambda r: f'{r["images_per_s"]:.3g}')
    row('peak memory [MB]', lambda r: f'{r["memory"]["peak_mb"]:.0f}')
    row('  over pre-run baseline [MB]',
        lambda r: f'{r["memory"]["peak_delta_mb"]:.0f}')
    if 'live' in works[0]['memory']:
        row('live peak over pre-run baseline [MB]',
            lambda r: f'{r["memory"]["live"]["peak_delta_mb"]:.0f}')
        row('  over the step\'s start [MB]',
            lambda r: f'{r["memory"]["live"]["step_rise_mb"]:.0f}')
    row('forward GMACs (OpenMMLab "GFLOPs")', lambda r: f'{r["gmacs"]:.2f}')
    row('achieved GFLOP/s (2 per MAC)',
        lambda r: f'{r["achieved_gflops_per_s"]:.1f}')
    for dtype in report['gemm']:
        row(f'fraction of {dtype} GEMM rate',
            lambda r, d=dtype: f'{r[f"gemm_{d}_fraction"]:.3f}')
    if 'detections_per_image' in works[0]:
        row('detections/image (last run)',
            lambda r: f'{r["detections_per_image"]:.0f}')

    width = max(len(label) for label, _ in rows)
    cols = [max(len(v[i]) for _, v in rows) for i in range(len(works))]
    compile_ = 'B' if report['compare_compile'] else report['compile']
    if report['freezing']:
        compile_ = f'{compile_} (freezing)'
    print(f'\n{report["task"]} {report["dtype"]}, batch {report["batch"]} x '
          f'3x{h}x{w}, {report["device_name"]}, {report["threads"]} threads, '
          f'torch {report["torch"]}, compile={compile_}, '
          f'with_cp={report["with_cp"]}')
    print('1-min load average: {before:.2f} before, {after:.2f} after'.format(
        **report['load_avg_1min']))
    for dtype, g in report['gemm'].items():
        print(f'{dtype} GEMM {g["size"]}^3: {g["gflops_per_s"]:.1f} GFLOP/s '
              f'median (before {g["median_before"]:.1f}, after '
              f'{g["median_after"]:.1f})')
    for label, values in rows:
        print(f'{label:<{width}} | ' +
              ' | '.join(f'{v:>{c}}' for v, c in zip(values, cols)))
    if 'compare' in report:
        c = report['compare']
        print(f'B/A median latency {c["latency_ratio_b_over_a"]:.3f}; ms per '
              f'GMAC A {c["ms_per_gmac"][0]:.2f}, B {c["ms_per_gmac"][1]:.2f}'
              f', B/A {c["ms_per_gmac_ratio_b_over_a"]:.3f}')
    print(f'memory: {works[0]["memory"]["kind"]}; baseline = after building, '
          'before the first step')
    if 'live' in works[0]['memory']:
        print('live: peak of glibc malloc in-use bytes, read after every op '
              'of one extra step')
    if report['task'] == 'train':
        print('train: achieved rate assumes a step = 3x the forward MACs '
              '(backward 2x); --with-cp recomputation is not counted')
    for i, r in enumerate(works):
        tag = f'{chr(65 + i)}: ' if len(works) > 1 else ''
        for note in r['notes']:
            print(f'{tag}{note}')
        print(f'{tag}not counted (op: calls): ' +
              ', '.join(f'{op.removeprefix("aten::")}: {n}'
                        for op, n in sorted(r['uncounted_ops'].items())))
    for warning in report['warnings']:
        print(f'WARNING: {warning}')


def compared_variants(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """Keyword arguments of each workload to build from one model: A and B
    of a comparison, or the one asked for."""
    if args.compare_onnx:  # built by onnx_workloads
        return []
    if args.compare_compile:
        return [dict(compiled=False), dict(compiled=True)]
    if args.compare_fused:
        return [
            dict(compiled=args.compile, fused=False),
            dict(compiled=args.compile)
        ]
    if getattr(args, 'compare_timm', None):  # backbone mode only
        return [
            dict(compiled=args.compile),
            dict(compiled=args.compile, timm_model=args.compare_timm)
        ]
    if getattr(args, 'baseline', None):  # backbone mode only
        return [
            dict(
                compiled=args.compile,
                backbone=load_baseline(args.baseline),
                label=f' @{args.baseline}'),
            dict(compiled=args.compile)
        ]
    return [dict(compiled=args.compile)]


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_upstream_noise()
    device, configs = validate(parser, args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    gemm_size = args.gemm_size or (8192 if device.type == 'cuda' else 2048)
    gemm_dtypes = gemm_references(args.dtype, device)
    load_before = os.getloadavg()[0]
    before = {
        k: measure_gemm(gemm_size, d, device)
        for k, d in gemm_dtypes.items()
    }
    workloads = []
    try:
        variants = compared_variants(args)
        for path in configs or [None]:
            for variant in variants:
                # the same random weights for every variant: a detector's
                # cost depends on them (proposals, RoIs per FPN level)
                torch.manual_seed(0)
                workloads.append(
                    backbone_workload(args, device, **variant) if path is
                    None else model_workload(path, args, device, **variant))
        if args.compare_onnx:
            torch.manual_seed(0)
            workloads = onnx_workloads(args, configs[0] if configs else None)
    except ValueError as e:
        parser.error(str(e))
    with ExitStack() as stack:
        if args.freezing:  # read when the first step compiles
            import torch._inductor.config as inductor_config
            stack.enter_context(inductor_config.patch(freezing=True))
        timings = time_workloads(workloads, args.warmup, args.repeat, device,
                                 args.live_memory)
    gemm = {}
    for k, d in gemm_dtypes.items():
        after = measure_gemm(gemm_size, d, device)
        gemm[k] = dict(
            size=gemm_size,
            gflops_per_s=statistics.median(before[k] + after),
            median_before=statistics.median(before[k]),
            median_after=statistics.median(after),
            max=max(before[k] + after))
    report = summarize(args, device, workloads, timings, gemm,
                       (load_before, os.getloadavg()[0]))
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == '__main__':
    main()
