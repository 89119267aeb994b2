"""What a benchmark times: a backbone, a timm model's feature maps, an
OpenMMLab model from its config, or the same model in onnxruntime or
OpenVINO."""
import argparse
import importlib.util
import logging
import os
import tempfile
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, List, Optional, Tuple

import timm
import torch
from mmengine.config import Config
from torch.nn.attention import SDPBackend, sdpa_kernel

from mmregionvit.engine.autocast import autocast_inference
from mmregionvit.models import RegionViT
from mmregionvit.utils.complexity import TensorMode, count_macs
from mmregionvit.utils.config import read_config
from .baseline import load_baseline
from .gemm import DTYPES
from .official import official_backbone, ours_like
from .synthetic import synthetic_batch
from .timing import Workload


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
    data, counted = synthetic_batch(cfg, scope, args, device)
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
        if args.dtype != 'fp32':  # as tools/test.py --amp runs it
            autocast_inference(model, device.type, DTYPES[args.dtype])
            notes.append('post-processing in float32 (RoIAlign, box '
                         'decoding, NMS, mask pasting, resizing, decoding)')

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
    """PyTorch eager (A) and onnxruntime, or OpenVINO with
    ``--compare-openvino`` (B), computing the same thing on the same input:
    the backbone, or what tools/export_onnx.py exports of a model (a
    detector end to end, NMS included; a segmentor's logits; a pose model's
    heatmaps), the file exported with dynamic sizes. With ``--dtype bf16``
    (OpenVINO only), A runs under bf16 autocast and B at bf16."""
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
        data, _ = synthetic_batch(cfg, scope, args, torch.device('cpu'))
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
    feed = {onnx_export.INPUT: x.numpy()}
    with tempfile.TemporaryDirectory(prefix='regionvit-onnx-') as folder:
        path = os.path.join(folder, 'model.onnx')
        onnx_export.export(graph, x, path)
        if args.compare_openvino:
            runtime, step, note = openvino_step(path, feed, args.dtype)
        else:
            sess = onnx_export.session(path, threads=torch.get_num_threads())
            import onnxruntime
            runtime, step = 'onnxruntime', partial(sess.run, None, feed)
            note = (f'onnxruntime {onnxruntime.__version__} CPU, '
                    f'{torch.get_num_threads()} intra-op threads, '
                    'dynamic-size file')
    context = _step_context(args, torch.device('cpu'))

    def eager() -> None:
        with torch.no_grad(), context():
            graph.module(x)

    notes = [
        'the same computation: backbone, or the exported graph (detectors '
        'end to end with NMS, masks unpasted); random weights'
    ]
    return [
        Workload(f'{name} eager', eager, macs, uncounted, notes),
        Workload(f'{name} {runtime}', step, macs, uncounted, notes + [note])
    ]


def openvino_step(path: str, feed: dict,
                  dtype: str) -> Tuple[str, Callable[[], Any], str]:
    """The file at ``path`` compiled by OpenVINO at ``dtype`` (its
    inference precision, ``fp32`` or ``bf16``) with torch's thread count:
    the runtime's name, a step that runs it on ``feed``, a note."""
    import openvino

    from mmregionvit.deploy.runtime import keeping_signal_stack, openvino_model
    threads = torch.get_num_threads()
    request = openvino_model(path, dtype, threads).create_infer_request()
    infer = keeping_signal_stack(request.infer)
    return 'OpenVINO', partial(infer, feed), (
        f'OpenVINO {openvino.__version__} CPU, {dtype} inference precision, '
        f'{threads} threads, dynamic-size file')


def compared_variants(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """Keyword arguments of each workload to build from one model: A and B
    of a comparison, or the one asked for."""
    if args.compare_onnx or args.compare_openvino:
        return []  # built by onnx_workloads
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
    repo = getattr(args, 'compare_official', None) or getattr(
        args, 'official', None)  # backbone mode only
    if repo:
        official = official_backbone(repo, args.arch)
        variants = [
            dict(
                compiled=args.compile,
                backbone=lambda **_: official,
                label=' official')
        ]
        if args.compare_official:
            variants.append(
                dict(
                    compiled=args.compile,
                    backbone=partial(ours_like, official),
                    label=' ours'))
        return variants
    if getattr(args, 'baseline', None):  # backbone mode only
        return [
            dict(
                compiled=args.compile,
                backbone=load_baseline(args.baseline),
                label=f' @{args.baseline}'),
            dict(compiled=args.compile)
        ]
    return [dict(compiled=args.compile)]
