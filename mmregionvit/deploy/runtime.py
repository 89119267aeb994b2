"""Running an exported file in place of a model's network.

:func:`use_backend` hands a model's network computation to an inference
backend and keeps everything around it: the data preprocessor, and the
post-processing that turns the file's outputs into the data samples the
OpenMMLab inferencers draw and save and the evaluators score. So the
exported file runs through the same tools as the PyTorch model.

``BACKENDS`` lists them by their ``--backend`` name. A backend is a
:class:`BackendModel` that opens its file and runs an image batch; adding
one is a subclass and an entry there.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from .export import INPUT, pipeline_input_size, run, session


class ExportedShapeError(ValueError):
    """Images of another size than the exported file's fixed one."""


def use_dataset_metainfo(inferencer, meta: dict, scope: str) -> None:
    """Give an upstream inferencer built without weights the dataset
    metainfo a checkpoint would have brought (``meta``: class names,
    palette, keypoints, skeleton), in place of its defaults (COCO's classes,
    Cityscapes')."""
    inner = getattr(inferencer, 'inferencer', inferencer)  # mmpose's
    if scope == 'mmseg':  # passed to the visualizer when drawing
        inner.model.dataset_meta = {
            k: meta.get(k)
            for k in ('classes', 'palette')
        }
    elif scope == 'mmpose':
        inner.model.dataset_meta = meta
        inner.visualizer.set_dataset_meta(meta)
    else:
        inner.model.dataset_meta = meta
        inner.visualizer.dataset_meta = meta


def _size(shape: Sequence) -> str:
    return 'x'.join(str(d) for d in shape)


class BackendModel:
    """An exported file: the names of its outputs, its input shape (``None``
    where an axis is free), and its outputs for an image batch."""
    suffix = ''  # the file name's end
    kind = ''  # the file format, in words

    def __init__(self, path: str) -> None:
        self.path = path
        self.outputs: List[str] = []
        self.input_shape: Tuple[Optional[int], ...] = ()

    def fixed_size(self) -> Optional[Tuple[int, int]]:
        """(H, W) the file takes, ``None`` when free."""
        h, w = self.input_shape[2:]
        return None if h is None or w is None else (h, w)

    def check_size(self, size: Sequence[int]) -> None:
        """:class:`ExportedShapeError` unless the file takes images of
        ``size`` (H, W)."""
        fixed = self.fixed_size()
        if fixed is not None and tuple(size) != fixed:
            raise ExportedShapeError(
                f'{self.path} was exported for images of {_size(fixed)} '
                f'only, got {_size(size)}: export it again with --dynamic '
                '(tools/export_onnx.py model CONFIG CHECKPOINT --out '
                f'{self.path} --dynamic).')

    def __call__(self, images: Tensor) -> List[Tensor]:
        self.check_size(images.shape[2:])
        batch = self.input_shape[0]
        if batch is None or batch == len(images):
            return self.run(images)
        if batch != 1:
            raise ExportedShapeError(
                f'{self.path} takes batches of {batch} images only, got '
                f'{len(images)}: export it again with --dynamic.')
        per_image = [self.run(image[None]) for image in images]
        return [torch.cat(outs) for outs in zip(*per_image)]

    def run(self, images: Tensor) -> List[Tensor]:
        """The file's outputs for a batch it takes."""
        raise NotImplementedError


class OnnxRuntimeModel(BackendModel):
    """An ONNX file in an onnxruntime session on the CPU."""
    suffix = '.onnx'
    kind = 'ONNX'

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.session = session(path)
        self.outputs = [o.name for o in self.session.get_outputs()]
        (image, ) = [i for i in self.session.get_inputs() if i.name == INPUT]
        self.input_shape = tuple(
            d if isinstance(d, int) else None for d in image.shape)

    def run(self, images: Tensor) -> List[Tensor]:
        return run(self.session, images)


BACKENDS = {'onnxruntime': OnnxRuntimeModel}


def check_backend_file(path: str, backend: str) -> None:
    """An exported file goes with its backend, weights with ``pytorch``;
    a ``ValueError`` says which option fits."""
    if backend == 'pytorch':
        for name, cls in BACKENDS.items():
            if path.endswith(cls.suffix):
                raise ValueError(f'{path} is an {cls.kind} file: add '
                                 f'--backend {name}.')
        return
    suffix = BACKENDS[backend].suffix
    if not path.endswith(suffix):
        raise ValueError(f'--backend {backend} runs an exported {suffix} '
                         f'file, got {path}; export one with '
                         'tools/export_onnx.py model CONFIG.')


def _outputs(scope: str, model: nn.Module) -> List[str]:
    """The outputs a file exported from a ``scope`` model has."""
    if scope == 'mmdet':
        names = ['dets', 'labels']
        if getattr(model, 'with_mask', False):
            names.append('masks')
        return names
    return [{'mmseg': 'seg_logits', 'mmpose': 'heatmaps'}[scope]]


def open_backend(path: str, backend: str, scope: str,
                 model: nn.Module) -> BackendModel:
    """The file opened by ``backend``, checked to hold the network of
    ``model`` (built from the ``scope`` config the file was exported
    from)."""
    exported = BACKENDS[backend](path)
    expected = _outputs(scope, model)
    if exported.outputs != expected:
        raise ValueError(f'{path} has outputs {exported.outputs}, but a '
                         f'{scope} config needs a file with outputs '
                         f'{expected}: export it with tools/export_onnx.py '
                         'model CONFIG.')
    return exported


def check_pipeline_size(exported: BackendModel, cfg) -> None:
    """:class:`ExportedShapeError` when the file's fixed size is not the one
    the config's test pipeline makes. (Where the pipeline's sizes vary, the
    file checks each batch it is given.)"""
    size = pipeline_input_size(cfg)
    if size is not None:
        exported.check_size(size)


def use_backend(model: nn.Module,
                path: str,
                scope: str,
                backend: str = 'onnxruntime') -> BackendModel:
    """Make ``model``, built from the ``scope`` (``mmdet``, ``mmseg`` or
    ``mmpose``) config the file was exported from, run its network in
    ``backend``; the opened file."""
    exported = open_backend(path, backend, scope, model)
    if scope == 'mmdet':
        model.predict = _DetectorPredict(model, exported)
        return exported
    # the file computes what the backbone, neck and head compute: the
    # model's own predict wraps it (sliding windows, flip test, decoding)
    model.extract_feat = lambda inputs: inputs
    head = model.decode_head if scope == 'mmseg' else model.head
    head.forward = lambda inputs: exported(inputs)[0].to(inputs.device)
    return exported


class _DetectorPredict:
    """``predict`` of an mmdet detector from the exported file's
    detections, rescaled to the original image (masks pasted there)."""

    def __init__(self, model: nn.Module, exported: BackendModel) -> None:
        self.model = model
        self.exported = exported

    def __call__(self,
                 batch_inputs: Tensor,
                 batch_data_samples: list,
                 rescale: bool = True) -> list:
        from mmengine.structures import InstanceData

        from .detection import final_detections, is_detectron, paste_masks
        from .export import detections
        detectron = is_detectron(self.model)
        results = []
        for inputs, sample in zip(batch_inputs, batch_data_samples):
            h, w = sample.img_shape[:2]  # the graph pads the image itself
            found = detections(self.exported(inputs[None, :, :h, :w]), 0)
            if rescale:
                h, w = sample.ori_shape[:2]
            found = final_detections(
                found, sample.scale_factor if rescale else (1.0, 1.0), (h, w),
                detectron)
            out = InstanceData(
                bboxes=found['bboxes'],
                scores=found['scores'],
                labels=found['labels'])
            if 'masks' in found:
                out.masks = paste_masks(
                    found['masks'], out.bboxes, h, w,
                    self.model.roi_head.test_cfg.mask_thr_binary)
            results.append(out.to(inputs.device))
        return self.model.add_pred_to_datasample(batch_data_samples, results)
