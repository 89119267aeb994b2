"""Pictures of what a RegionViT model sees, for ``tools/vis_attention.py``.

A *subject* is a model with a RegionViT backbone and what the pictures need
of it: how it reads an image (its own preprocessing) and, for class
activation maps, the score to explain. :func:`make_pictures` checks every
input first, computes everything, then writes the PNGs.
"""
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch import Tensor

from ..models.regionvit import RegionViT
from .attention import (Point, StageRecord, check_stages, feature_image,
                        local_attention, record_attention, regional_attention)
from .cam import grad_cam

KINDS = ('regional', 'local', 'features', 'cam')


@dataclass
class Prepared:
    """One image as the model reads it.

    ``inputs``: ``(1, 3, H, W)``, what the backbone gets; ``image``:
    ``(H, W, 3)`` floats in [0, 1], the resized image on the input's canvas
    (grey where the preprocessor pads); ``scale``: input pixels per image
    pixel, ``(x, y)``; ``extra``: what the model's score needs.
    """
    inputs: Tensor
    image: np.ndarray
    scale: Tuple[float, float]
    extra: dict = field(default_factory=dict)


@dataclass
class Score:
    """What Grad-CAM explains: ``value()`` runs the model and returns the
    scalar; ``title`` says what it is; ``box``, a detection's, in input
    pixels."""
    value: Callable[[], Tensor]
    title: str
    box: Optional[Sequence[float]] = None


def image_size(path: str) -> Tuple[int, int]:
    """``(width, height)`` of an image file; one line if it is none."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'image {path} not found')
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f'{path} cannot be read as an image; give image '
                         'files (PNG, JPEG, ...)')
    return image.shape[1], image.shape[0]


class ClassifierSubject:
    """A timm RegionViT classifier. Images are resized (bicubic) so that
    the shorter side is the model's input size, keeping the aspect ratio
    (no crop: the whole image is seen); ImageNet mean and std."""
    kind = 'classifier'

    def __init__(self, model: torch.nn.Module) -> None:
        from timm.data import resolve_data_config
        config = resolve_data_config(model=model)
        self.model = model
        self.backbone = model.backbone
        self.size = config['input_size'][-1]
        self.mean = torch.tensor(config['mean'])[:, None, None]
        self.std = torch.tensor(config['std'])[:, None, None]

    def prepare(self, path: str) -> Prepared:
        from PIL import Image
        rgb = cv2.cvtColor(
            cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        ratio = self.size / min(h, w)
        size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
        image = np.asarray(Image.fromarray(rgb).resize(
            size, Image.BICUBIC)).astype(np.float32) / 255
        inputs = (torch.from_numpy(image).permute(2, 0, 1) -
                  self.mean) / self.std
        return Prepared(inputs[None].float(), image,
                        (size[0] / w, size[1] / h))

    def score(self, prep: Prepared, target: Optional[int],
              det_index: int) -> Score:
        with torch.no_grad():
            logits = self.model(prep.inputs)[0]
        n = len(logits)
        if target is None:
            target = int(logits.argmax())
        elif not 0 <= target < n:
            raise ValueError(f'--target-category {target} is out of range: '
                             f'the model has {n} classes (0 to {n - 1})')

        def value() -> Tensor:
            return self.model(prep.inputs)[0, target]

        return Score(value,
                     f'class {target} (logit {float(logits[target]):.2f})')


class ConfigSubject:
    """An mmdet detector or mmseg segmentor built from its config, reading
    images through the config's test pipeline and data preprocessor."""

    def __init__(self, cfg, checkpoint: Optional[str]) -> None:
        from mmengine.dataset import Compose
        from mmengine.registry import MODELS, init_default_scope
        scope = cfg.default_scope
        if scope not in ('mmdet', 'mmseg'):
            raise ValueError(f'{scope} configs are not supported here; give '
                             'a detection or segmentation config, or --model '
                             'for a classifier')
        self.kind = 'detector' if scope == 'mmdet' else 'segmentor'
        init_default_scope(scope)
        cfg.model.backbone.init_cfg = None  # the weights come from checkpoint
        self.model = MODELS.build(cfg.model)
        self.classes = load_weights(self.model, checkpoint)
        self.model.eval()
        self.backbone = self.model.backbone
        if not isinstance(self.backbone, RegionViT):
            raise ValueError('the config\'s backbone is '
                             f'{type(self.backbone).__name__}, not RegionViT')
        steps = [
            t for t in cfg.test_dataloader.dataset.pipeline
            if not t['type'].endswith('LoadAnnotations')
        ]
        self.pipeline = Compose(steps)

    def prepare(self, path: str) -> Prepared:
        data = self.pipeline(dict(img_path=path, img_id=0))
        batch = self.model.data_preprocessor(
            dict(inputs=[data['inputs']], data_samples=[data['data_samples']]),
            False)
        inputs, samples = batch['inputs'], batch['data_samples']
        meta = samples[0].metainfo
        h, w = meta['img_shape'][:2]
        ori_h, ori_w = meta['ori_shape'][:2]
        pre = self.model.data_preprocessor
        image = (inputs[0] * pre.std + pre.mean).permute(1, 2, 0) / 255
        # mmengine's and mmseg's preprocessors name their BGR->RGB switch
        # differently; without one, the image stays BGR as loaded
        if not getattr(pre, '_channel_conversion',
                       getattr(pre, 'channel_conversion', False)):
            image = image.flip(-1)
        image = image.clamp(0, 1).numpy().copy()
        image[h:], image[:, w:] = 0.5, 0.5
        return Prepared(inputs, image, (w / ori_w, h / ori_h),
                        dict(samples=samples))

    def score(self, prep: Prepared, target: Optional[int],
              det_index: int) -> Score:
        if self.kind == 'detector':
            return self._detection_score(prep, det_index)
        return self._segmentation_score(prep, target)

    def _detection_score(self, prep: Prepared, index: int) -> Score:
        samples = prep.extra['samples']
        with torch.no_grad():
            found = self.model.predict(prep.inputs, samples)[0].pred_instances
        n = len(found)
        if not 0 <= index < n:
            raise ValueError(f'--det-index {index} is out of range: the '
                             f'detector found {n} detections in this image')

        def value() -> Tensor:
            return self.model.predict(prep.inputs,
                                      samples)[0].pred_instances.scores[index]

        label = int(found.labels[index])
        name = self.classes[label] if self.classes else f'class {label}'
        box = found.bboxes[index].tolist()  # in image pixels
        where = ', '.join(f'{v:.0f}' for v in box)
        sx, sy = prep.scale
        return Score(
            value, f'detection {index}: {name} '
            f'{float(found.scores[index]):.2f} at ({where})',
            [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy])

    def _segmentation_score(self, prep: Prepared,
                            target: Optional[int]) -> Score:
        metas = [s.metainfo for s in prep.extra['samples']]
        with torch.no_grad():
            logits = self.model.encode_decode(prep.inputs, metas)[0]
        n = len(logits)
        h, w = metas[0]['img_shape'][:2]
        pred = logits.argmax(0)
        if target is None:
            target = int(pred[:h, :w].flatten().mode().values)
        elif not 0 <= target < n:
            raise ValueError(f'--target-category {target} is out of range: '
                             f'the model has {n} classes (0 to {n - 1})')
        where = pred == target

        def value() -> Tensor:
            out = self.model.encode_decode(prep.inputs, metas)[0, target]
            return (out * where).sum()

        name = self.classes[target] if self.classes else f'class {target}'
        return Score(value,
                     f'{name}, summed over its {int(where.sum())} pixels')


def load_weights(model: torch.nn.Module,
                 checkpoint: Optional[str]) -> Optional[Sequence[str]]:
    """Load ``checkpoint`` (weights only) into ``model``, or initialise it
    when None; the class names the checkpoint records, if any."""
    from ..models.checkpoint import extract_state_dict
    from ..utils.checkpoint_safety import load_checkpoint_file
    if checkpoint is None:
        model.init_weights()
        return None
    loaded = load_checkpoint_file(checkpoint)
    state = extract_state_dict(loaded, checkpoint)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f'{checkpoint} does not fit the config\'s model '
                         f'({len(missing)} weights missing, e.g. '
                         f'{(missing or ["-"])[0]}; {len(unexpected)} '
                         f'unexpected, e.g. {(unexpected or ["-"])[0]})')
    meta = loaded.get('meta') or {}
    return (meta.get('dataset_meta') or {}).get('classes')


def path_used(backbone: RegionViT, inputs: Tensor,
              records: List[StageRecord]) -> str:
    """Which path the attention came from, in one line; when the backbone
    runs fast paths, how far their outputs are from the recorded ones."""
    if not backbone.fused:
        return ('attention recorded on the reference path (the backbone '
                'runs with fused=False)')
    with torch.no_grad():
        fast = backbone.forward_stages(inputs, range(len(records)))[1]
    diff = max(
        float((f[0] - r.features).abs().max()) for f, r in zip(fast, records))
    return ('attention recorded on the reference path (fused=False); its '
            f'stage outputs differ from the fast path\'s by at most '
            f'{diff:.1e}')


def _check_block(backbone: RegionViT, stages: Sequence[int],
                 block: int) -> None:
    for s in stages:
        depth = len(backbone.stages[s].blocks)
        if not -depth <= block < depth:
            raise ValueError(f'--block {block} is out of range: stage {s} '
                             f'has {depth} blocks (0 to {depth - 1})')


def _check_point(point: Optional[Point], sizes: Dict[str, tuple]) -> None:
    if point is None:
        return
    x, y = point
    for path, (w, h) in sizes.items():
        if not (0 <= x < w and 0 <= y < h):
            raise ValueError(f'--point {x:g} {y:g} is outside {path} '
                             f'({w}x{h}); give 0 <= X < {w} and '
                             f'0 <= Y < {h}')


def make_pictures(subject,
                  images: Sequence[str],
                  out_dir: str,
                  kinds: Sequence[str] = KINDS,
                  point: Optional[Point] = None,
                  stages: Optional[Sequence[int]] = None,
                  block: int = -1,
                  all_heads: bool = False,
                  features: str = 'mean',
                  target: Optional[int] = None,
                  det_index: int = 0,
                  log: Callable[[str], None] = print) -> List[str]:
    """Write the pictures of ``kinds`` for each image to ``out_dir``;
    returns their paths.

    ``point`` is in the image's pixels (default: each image's centre).
    Bad input raises a one-line ``ValueError`` or ``FileNotFoundError``
    before anything is written.
    """
    backbone = subject.backbone
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f'unknown kind {bad[0]!r}; choose from '
                         f'{", ".join(KINDS)}')
    if features not in ('mean', 'pca'):
        raise ValueError(f"--features must be 'mean' or 'pca', got "
                         f'{features!r}')
    stages = check_stages(
        backbone,
        range(len(backbone.stages)) if stages is None else stages)
    _check_block(backbone, stages, block)
    sizes = {path: image_size(path) for path in images}
    _check_point(point, sizes)

    jobs = [
        _compute(subject, path, sizes[path], kinds, point, stages, target,
                 det_index, log) for path in images
    ]
    os.makedirs(out_dir, exist_ok=True)
    return [
        out for job in jobs for out in _draw(job, out_dir, kinds, stages,
                                             block, all_heads, features)
    ]


def _compute(subject, path: str, size: Tuple[int, int], kinds: Sequence[str],
             point: Optional[Point], stages: Sequence[int],
             target: Optional[int], det_index: int,
             log: Callable[[str], None]) -> dict:
    """Everything the pictures of one image need."""
    backbone = subject.backbone
    prep = subject.prepare(path)
    x, y = point if point is not None else (size[0] / 2, size[1] / 2)
    job = dict(
        path=path,
        prep=prep,
        label=f'point ({x:g}, {y:g})',
        at=(x * prep.scale[0], y * prep.scale[1]),
        records={},
        cam_records={})
    if {'regional', 'local', 'features'} & set(kinds):
        records = record_attention(backbone, prep.inputs)
        log(f'{path}: ' + path_used(backbone, prep.inputs, records))
        job['records'] = {r.index: r for r in records}
    if 'cam' in kinds:
        job['score'] = subject.score(prep, target, det_index)
        records, job['cam'] = grad_cam(backbone, stages, job['score'].value)
        job['cam_records'] = {r.index: r for r in records}
    return job


def _draw(job: dict, out_dir: str, kinds: Sequence[str], stages: Sequence[int],
          block: int, all_heads: bool, features: str) -> List[str]:
    """Write the pictures of one image; their paths."""
    from . import figures
    stem = osp.join(out_dir, osp.splitext(osp.basename(job['path']))[0])
    image, at, label = job['prep'].image, job['at'], job['label']
    written = []
    for s in stages:
        rec = job['records'].get(s)
        out = f'{stem}_{{}}_stage{s}.png'
        if 'regional' in kinds:
            figures.draw_regional(
                out.format('regional'), image, rec,
                regional_attention(rec, block, at), at, label,
                block % len(rec.regional), not all_heads)
            written.append(out.format('regional'))
        if 'local' in kinds:
            to_regional, to_local = local_attention(rec, block, at)
            figures.draw_local(
                out.format('local'), image, rec, to_regional, to_local, at,
                label, block % len(rec.local), not all_heads)
            written.append(out.format('local'))
        if 'features' in kinds:
            figures.draw_features(
                out.format('features'), image, rec,
                feature_image(rec.features, features))
            written.append(out.format('features'))
        if 'cam' in kinds:
            score = job['score']
            figures.draw_cam(
                out.format('cam'), image, job['cam_records'][s], job['cam'][s],
                score.title, score.box)
            written.append(out.format('cam'))
    return written
