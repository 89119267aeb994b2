"""ONNX export of the backbone and of each task's model, checked in
onnxruntime against PyTorch.

Exports use torch's TorchScript-based exporter (``dynamo=False``) at
opset 17: its tracer records the size arithmetic of the reference forward
(padding, window counts, masks) as graph operations, so that one file runs
at every batch size and image size. ``torch.export`` (``dynamo=True``)
specialises on the example: it guards on the window arithmetic (for a
224x224 example, heights outside 140-224 are refused) and on the
data-dependent detection post-processing.
"""
import os
import os.path as osp
import tempfile
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import (Callable, ContextManager, Dict, Iterator, List, Optional,
                    Sequence, Tuple)

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

OPSET = 17  # RoiAlign's half_pixel mode needs >= 16
INPUT = 'input'


class CheckFailed(RuntimeError):
    """onnxruntime's outputs differ from PyTorch's beyond tolerance."""


@dataclass
class Graph:
    """A module to export: image batch in, ``outputs`` out."""
    module: nn.Module
    outputs: List[str]
    # output name -> its dynamic axes (besides the batch)
    spatial: Dict[str, Dict[int, str]]
    task: str  # 'backbone', 'mmdet', 'mmseg' or 'mmpose'
    # entered while tracing: makes the module traceable for every size
    tracing: Callable[[], ContextManager] = nullcontext


def adaptive_avg_pool(x: Tensor, output_size: Tuple[int, int]) -> Tensor:
    """``F.adaptive_avg_pool2d`` with the bins computed from the input's
    size (in a graph, for every size): bin ``i`` of ``s`` over ``n`` rows
    covers rows ``floor(i n / s)`` to ``ceil((i + 1) n / s)``."""
    h, w = x.shape[-2:]
    sh, sw = output_size
    rows = []
    for i in range(sh):
        y0, y1 = i * h // sh, ((i + 1) * h + sh - 1) // sh
        rows.append(
            torch.cat([
                x[..., y0:y1, j * w // sw:((j + 1) * w + sw - 1) // sw].mean(
                    (-2, -1), keepdim=True) for j in range(sw)
            ], -1))
    return torch.cat(rows, -2)


@contextmanager
def traceable_sizes(model: nn.Module) -> Iterator[None]:
    """Meanwhile, the modules that compute sizes in Python, which a trace
    would keep as constants, compute them in the graph: mmseg's
    ``Upsample`` resizes by its scale factor (which samples the same
    points), adaptive average pooling (UPerNet's pyramid pooling) takes its
    bins from the input size (the exporter supports neither with dynamic
    sizes)."""
    from mmseg.models.utils import Upsample
    patched = []
    for m in model.modules():
        if isinstance(m, Upsample) and not m.size:
            m.forward = partial(
                F.interpolate,
                scale_factor=m.scale_factor,
                mode=m.mode,
                align_corners=m.align_corners)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            size = m.output_size
            size = (size, size) if isinstance(size, int) else tuple(size)
            if None in size:
                raise ValueError('ONNX export needs adaptive pooling to a '
                                 f'fixed size, got {m.output_size}.')
            m.forward = partial(adaptive_avg_pool, output_size=size)
        else:
            continue
        patched.append(m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward


def backbone_graph(backbone: nn.Module) -> Graph:
    """A RegionViT backbone: its output maps ``stage{i}``."""
    names = [f'stage{i}' for i in backbone.out_indices]
    spatial = {n: {2: f'{n}_height', 3: f'{n}_width'} for n in names}
    return Graph(backbone.eval(), names, spatial, 'backbone')


class TensorMode(nn.Module):
    """A segmentor's or pose estimator's ``tensor`` mode: logits or
    heatmaps of the network, before any post-processing."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        out = self.model(images, None, mode='tensor')
        if not isinstance(out, Tensor):
            raise ValueError('ONNX export takes models whose tensor mode '
                             f'returns one tensor; got {type(out).__name__}.')
        return out


def model_graph(model: nn.Module, scope: str) -> Graph:
    """The graph of an mmdet, mmseg or mmpose model."""
    model = model.eval()
    if scope == 'mmdet':
        from .detection import detector_graph
        module = detector_graph(model)
        names = ['dets', 'labels']
        if getattr(module, 'with_mask', False):
            names.append('masks')
        return Graph(module, names, {}, scope)
    name = {'mmseg': 'seg_logits', 'mmpose': 'heatmaps'}[scope]
    tracing = partial(traceable_sizes, model) \
        if scope == 'mmseg' else nullcontext
    return Graph(
        TensorMode(model), [name],
        {name: {
            2: f'{name}_height',
            3: f'{name}_width'
        }}, scope, tracing)


def export(graph: Graph,
           example: Tensor,
           path: str,
           dynamic: bool = True) -> None:
    """Write ``graph`` traced on ``example`` to ``path``; with ``dynamic``,
    batch, height and width are free. The file appears only when
    complete."""
    axes = None
    if dynamic:
        axes = {INPUT: {0: 'batch', 2: 'height', 3: 'width'}}
        for name in graph.outputs:
            axes[name] = {0: 'batch', **graph.spatial.get(name, {})}
    # a wrapper module is created in training mode, and the exporter would
    # set its children (norms, stochastic depth) to it
    graph.module.eval()
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix='.onnx', dir=folder)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad(), graph.tracing():
            # the tracer's notes on Python values (shape checks, the
            # padding decisions made on plain ints outside graphs) and the
            # exporter's deprecation notice
            warnings.simplefilter('ignore')
            torch.onnx.export(
                graph.module, (example, ),
                tmp,
                dynamo=False,
                opset_version=OPSET,
                training=torch.onnx.TrainingMode.EVAL,
                input_names=[INPUT],
                output_names=graph.outputs,
                dynamic_axes=axes)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def session(path: str, threads: Optional[int] = None):
    """An onnxruntime session on the CPU (``threads``: intra-op threads,
    default onnxruntime's)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])


def run(sess, images: Tensor) -> List[Tensor]:
    """The session's outputs for an image batch, as tensors."""
    outs = sess.run(None, {INPUT: images.detach().cpu().numpy()})
    return [torch.from_numpy(o) for o in outs]


def _check_count(outs: Sequence[Tensor], expected: int,
                 images: Tensor) -> None:
    """:class:`CheckFailed` unless onnxruntime gave ``expected`` outputs."""
    if len(outs) != expected:
        raise CheckFailed(f'onnxruntime gives {len(outs)} outputs, PyTorch '
                          f'{expected} for input {tuple(images.shape)}.')


def check_tensors(sess, module: nn.Module, images: Tensor,
                  atol: float) -> float:
    """Largest absolute difference between onnxruntime's and the module's
    outputs; :class:`CheckFailed` beyond ``atol``."""
    with torch.no_grad():
        expected = module(images)
    if isinstance(expected, Tensor):
        expected = (expected, )
    outs = run(sess, images)
    _check_count(outs, len(expected), images)
    worst = 0.0
    for out, ref in zip(outs, expected):
        if out.shape != ref.shape:
            raise CheckFailed(f'onnxruntime output of shape '
                              f'{tuple(out.shape)}, PyTorch '
                              f'{tuple(ref.shape)} for input '
                              f'{tuple(images.shape)}.')
        worst = max(worst, (out - ref).abs().max().item())
    if not worst <= atol:
        raise CheckFailed(f'onnxruntime differs from PyTorch by {worst:.3g} '
                          f'(tolerance {atol:g}) for input '
                          f'{tuple(images.shape)}.')
    return worst


def detector_batch(model: nn.Module, images: Sequence[Tensor]):
    """The inputs of ``model.predict`` for uint8 BGR images, as mmdet's
    test pipeline leaves them without resizing; and the graph's input
    (the same images, normalised and not padded)."""
    from mmdet.structures import DetDataSample
    h, w = images[0].shape[-2:]
    samples = [
        DetDataSample(
            metainfo=dict(
                img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
        for _ in images
    ]
    data = model.data_preprocessor(
        dict(inputs=list(images), data_samples=samples), False)
    return data, data['inputs'][..., :h, :w]


def detections(outputs: Sequence[Tensor], index: int) -> dict:
    """Image ``index``'s detections from the graph's outputs (its rows with
    a label)."""
    dets, labels = outputs[0][index], outputs[1][index]
    found = labels >= 0
    out = dict(
        bboxes=dets[found, :4], scores=dets[found, 4], labels=labels[found])
    if len(outputs) > 2:
        out['masks'] = outputs[2][index][found]
    return out


def match_detections(got: dict, ref, box_atol: float,
                     score_atol: float) -> Tensor:
    """For each of ``ref``'s detections (best first), the index of the one
    in ``got`` with its label, box and score (within tolerance); detections
    of (nearly) equal score may come in either order. ``None`` for a
    detection without counterpart."""
    free = torch.ones(len(got['labels']), dtype=torch.bool)
    order = []
    for box, score, label in zip(ref.bboxes, ref.scores, ref.labels):
        same = free & (got['labels'] == label) & (
            (got['scores'] - score).abs() <= score_atol) & (
                (got['bboxes'] - box).abs().amax(1) <= box_atol)
        if not same.any():
            order.append(None)
            continue
        i = int(same.nonzero()[0])
        free[i] = False
        order.append(i)
    return order


def check_detector(sess,
                   model: nn.Module,
                   images: Sequence[Tensor],
                   box_atol: float = 1e-3,
                   score_atol: float = 1e-4,
                   mask_rtol: float = 1e-4) -> dict:
    """onnxruntime's detections against ``model.predict``'s for uint8 BGR
    images of one size: the same number, each with its counterpart of the
    same label, box and score (within tolerance), and the same pasted
    masks (up to ``mask_rtol`` of their pixels); else
    :class:`CheckFailed`."""
    from .detection import final_detections, is_detectron, paste_masks
    data, inputs = detector_batch(model, images)
    with torch.no_grad():
        expected = model.predict(data['inputs'], data['data_samples'])
    outputs = run(sess, inputs)
    _check_count(outputs, 3 if getattr(model, 'with_mask', False) else 2,
                 inputs)
    stats = dict(detections=0, box=0.0, score=0.0, mask_pixels=0.0)
    for i, sample in enumerate(expected):
        ref = sample.pred_instances
        got = final_detections(
            detections(outputs, i), sample.scale_factor, sample.ori_shape[:2],
            is_detectron(model))
        where = f'image {i} of input {tuple(inputs.shape)}'
        if len(got['labels']) != len(ref.labels):
            raise CheckFailed(f'{where}: onnxruntime finds '
                              f'{len(got["labels"])} detections, PyTorch '
                              f'{len(ref.labels)}.')
        order = match_detections(got, ref, box_atol, score_atol)
        if None in order:
            k = order.index(None)
            raise CheckFailed(
                f'{where}: PyTorch\'s detection {k} (label '
                f'{int(ref.labels[k])}, score {float(ref.scores[k]):.6g}, '
                f'box {[round(float(v), 3) for v in ref.bboxes[k]]}) has no '
                f'counterpart within {box_atol:g} px and score '
                f'{score_atol:g} in onnxruntime\'s.')
        stats['detections'] += len(order)
        if not order:
            continue
        got = {k: v[order] for k, v in got.items()}
        stats['box'] = max(stats['box'],
                           (got['bboxes'] - ref.bboxes).abs().max().item())
        stats['score'] = max(stats['score'],
                             (got['scores'] - ref.scores).abs().max().item())
        if 'masks' in got:
            h, w = ref.masks.shape[-2:]
            pasted = paste_masks(got['masks'], got['bboxes'], h, w,
                                 model.roi_head.test_cfg.mask_thr_binary)
            stats['mask_pixels'] = max(stats['mask_pixels'],
                                       (pasted
                                        != ref.masks).float().mean().item())
    if not stats['mask_pixels'] <= mask_rtol:
        raise CheckFailed(f'{stats["mask_pixels"]:.3g} of the mask pixels '
                          f'differ (tolerance {mask_rtol:g}).')
    return stats


def random_images(batch: int,
                  shape: Tuple[int, int],
                  seed: int = 0) -> List[Tensor]:
    """Random uint8 BGR images."""
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, 256, (3, *shape), dtype=torch.uint8, generator=gen)
        for _ in range(batch)
    ]


def normalised(model: nn.Module, images: Sequence[Tensor]) -> Tensor:
    """Images as the model's data preprocessor normalises them (for the
    tensor-mode graphs, which take the preprocessor's output)."""
    from mmengine.structures import BaseDataElement

    # empty samples: mmpose's preprocessor records the batch shape in them
    samples = [BaseDataElement() for _ in images]
    data = model.data_preprocessor(
        dict(inputs=list(images), data_samples=samples), False)
    return data['inputs']


def pipeline_input_size(cfg) -> Optional[Tuple[int, int]]:
    """(H, W) of every image the config's test pipeline gives the network,
    or ``None`` where the size varies: images kept at their own size, or
    resized keeping their aspect ratio (or orientation), cropped, padded.
    Only a resize to one size (``keep_ratio=False``) or a top-down affine
    crop fixes it."""
    from ..utils.preflight import leaf_datasets
    dataset = next(leaf_datasets(cfg.test_dataloader.dataset))
    size = None
    for step in dataset.get('pipeline', []):
        kind = str(step.get('type', '')).split('.')[-1]
        if kind == 'TopdownAffine':
            size = tuple(step['input_size'][::-1])
        elif kind == 'Resize' and step.get('scale') is not None \
                and not step.get('keep_ratio', False):
            scale = step['scale']
            scale = (scale, scale) if isinstance(scale, int) else scale
            size = tuple(scale[::-1])
        elif any(
                word in kind
                for word in ('Resize', 'Crop', 'Pad', 'Affine', 'Aug')):
            size = None
    if cfg.model.get('test_cfg', {}).get('mode') == 'slide':
        size = None  # windows of the image, smaller at its edges
    return size


def second_shape(shape: Tuple[int, int]) -> Tuple[int, int]:
    """Another size for checking dynamic graphs: about 3/4, odd."""
    return tuple(s * 3 // 4 | 1 for s in shape)


def check_model(path: str, graph: Graph, model: Optional[nn.Module],
                checks: Sequence[Tuple[int, Tuple[int, int]]],
                atol: float) -> List[str]:
    """Run the file on each ``(batch, (H, W))`` of ``checks`` and compare
    with PyTorch; one line per check."""
    sess = session(path)
    lines = []
    for batch, shape in checks:
        images = random_images(batch, shape)
        size = f'{batch}x3x{shape[0]}x{shape[1]}'
        if graph.task == 'mmdet':
            s = check_detector(sess, model, images, box_atol=atol)
            if not s['detections']:
                lines.append(f'{size}: no detections in either (nothing '
                             'above the score threshold)')
                continue
            lines.append(f'{size}: the same {s["detections"]} detections; '
                         f'largest box difference {s["box"]:.2g} px, score '
                         f'{s["score"]:.2g}' +
                         (f', mask pixels {s["mask_pixels"]:.2g}' if 'masks' in
                          graph.outputs else ''))
            continue
        if graph.task == 'backbone':  # about the scale of normalised images
            x = torch.stack(images).float().sub(128).div(64)
        else:
            x = normalised(model, images)
        worst = check_tensors(sess, graph.module, x, atol)
        lines.append(f'{size}: largest difference {worst:.2g}')
    return lines


def model_outputs_doc(graph: Graph) -> str:
    """What the outputs of an exported file mean, in one line."""
    if graph.task == 'backbone':
        return ', '.join(graph.outputs) + ': feature maps (NCHW)'
    if graph.task == 'mmdet':
        text = ('dets (N, K, 5): x1, y1, x2, y2, score in input pixels; '
                'labels (N, K): class, -1 after the last detection')
        if 'masks' in graph.outputs:
            text += '; masks (N, K, 28, 28): mask probabilities in the box'
        return text
    if graph.task == 'mmseg':
        return 'seg_logits (N, classes, H/4, W/4): logits before resizing'
    return 'heatmaps (N, keypoints, H/4, W/4)'
