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
import argparse
import ctypes
import importlib.util
from functools import wraps
from typing import Callable, List, Optional, Sequence, Tuple

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
    package = ''  # the Python package that runs it
    precisions: Tuple[str, ...] = ()  # what --precision may ask of it

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
    package = 'onnxruntime'

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.session = session(path)
        self.outputs = [o.name for o in self.session.get_outputs()]
        (image, ) = [i for i in self.session.get_inputs() if i.name == INPUT]
        self.input_shape = tuple(
            d if isinstance(d, int) else None for d in image.shape)

    def run(self, images: Tensor) -> List[Tensor]:
        return run(self.session, images)


# OpenVINO's names of the inference precisions --precision takes
OPENVINO_PRECISIONS = {'fp32': 'f32', 'bf16': 'bf16'}


class _SignalStack(ctypes.Structure):
    """``stack_t`` of sigaltstack(2)."""
    _fields_ = [('ss_sp', ctypes.c_void_p), ('ss_flags', ctypes.c_int),
                ('ss_size', ctypes.c_size_t)]


_LIBC = ctypes.CDLL(None)
_SIGALTSTACK = getattr(_LIBC, 'sigaltstack', None)


def keeping_signal_stack(fn: Callable) -> Callable:
    """``fn`` that leaves the calling thread on the alternate signal stack
    it had. OpenVINO's CPU plugin gives the threads that compile or run a
    model a signal stack of its own and puts back the one it found when
    the model goes; models that go in another order than they came leave
    the thread on a stack already freed, and the next signal handled there
    (Python's handlers run on it) kills the process without a trace."""
    if _SIGALTSTACK is None:  # no sigaltstack(2) on this platform
        return fn

    @wraps(fn)
    def call(*args, **kwargs):
        saved = _SignalStack()
        _SIGALTSTACK(None, ctypes.byref(saved))
        try:
            return fn(*args, **kwargs)
        finally:
            _SIGALTSTACK(ctypes.byref(saved), None)

    return call


@keeping_signal_stack
def openvino_model(path: str,
                   precision: Optional[str] = None,
                   threads: Optional[int] = None):
    """An ONNX file compiled by OpenVINO for the CPU, at ``precision``
    (``fp32`` or ``bf16``; default OpenVINO's: bf16 on CPUs with bf16
    instructions) with ``threads`` inference threads (default
    OpenVINO's)."""
    import openvino as ov
    config = {}
    if precision:
        config['INFERENCE_PRECISION_HINT'] = OPENVINO_PRECISIONS[precision]
    if threads:
        config['INFERENCE_NUM_THREADS'] = threads
    return ov.Core().compile_model(path, 'CPU', config)


class OpenVinoModel(BackendModel):
    """An ONNX file compiled by OpenVINO for the CPU."""
    suffix = '.onnx'
    kind = 'ONNX'
    package = 'openvino'
    precisions = tuple(OPENVINO_PRECISIONS)

    def __init__(self, path: str, precision: Optional[str] = None) -> None:
        super().__init__(path)
        try:
            self.compiled = openvino_model(path, precision)
        except RuntimeError as e:  # its last line says why
            at = f' at {precision}' if precision else ''
            reason = str(e).strip().splitlines()[-1]
            raise ValueError(
                f'OpenVINO cannot compile {path}{at}: {reason}') from e
        self.outputs = [o.get_any_name() for o in self.compiled.outputs]
        (image, ) = [
            i for i in self.compiled.inputs if i.get_any_name() == INPUT
        ]
        self.input_shape = tuple(d.get_length() if d.is_static else None
                                 for d in image.get_partial_shape())

    def run(self, images: Tensor) -> List[Tensor]:
        # outputs copied out of the request: the next run reuses its memory
        outs = keeping_signal_stack(
            self.compiled)({
                INPUT: images.detach().cpu().numpy()
            },
                           share_outputs=False)
        return [torch.from_numpy(outs[o]) for o in self.compiled.outputs]


BACKENDS = {'onnxruntime': OnnxRuntimeModel, 'openvino': OpenVinoModel}


def add_backend_arguments(parser: argparse.ArgumentParser,
                          action: str) -> None:
    """The tools' ``--backend`` (``action``: what the tool does with an
    exported file) and OpenVINO's ``--precision``."""
    parser.add_argument(
        '--backend',
        choices=['pytorch', *BACKENDS],
        default='pytorch',
        help=f'onnxruntime, openvino: {action} an exported .onnx file')
    parser.add_argument(
        '--precision',
        choices=list(OPENVINO_PRECISIONS),
        help="openvino only: its inference precision (default OpenVINO's: "
        'bf16 on CPUs with bf16 instructions, AMX or AVX512-BF16, else '
        'fp32)')


def check_backend(backend: str, precision: Optional[str] = None) -> None:
    """``backend`` installed and taking ``precision``: else an
    ``ImportError`` or ``ValueError`` that says what to change."""
    if backend == 'pytorch' and precision is None:
        return
    takers = [n for n, c in BACKENDS.items() if precision in c.precisions]
    if precision is not None and backend not in takers:
        raise ValueError(f'--precision {precision} is for --backend '
                         f'{" or ".join(takers)}, not {backend}: drop it.')
    package = BACKENDS[backend].package
    if importlib.util.find_spec(package) is None:
        raise ImportError(f'{package} not installed (--backend {backend}): '
                          'pip install -r requirements/deploy.txt')


def check_backend_file(path: str, backend: str) -> None:
    """An exported file goes with its backend, weights with ``pytorch``;
    a ``ValueError`` says which option fits."""
    if backend == 'pytorch':
        fitting = {
            n: c
            for n, c in BACKENDS.items() if path.endswith(c.suffix)
        }
        if fitting:
            kind = next(iter(fitting.values())).kind
            options = ' or '.join(f'--backend {n}' for n in fitting)
            raise ValueError(f'{path} is an {kind} file: add {options}.')
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


def open_backend(path: str,
                 backend: str,
                 scope: str,
                 model: nn.Module,
                 precision: Optional[str] = None) -> BackendModel:
    """The file opened by ``backend`` (at ``precision``, where it takes
    one), checked to hold the network of ``model`` (built from the
    ``scope`` config the file was exported from)."""
    options = {} if precision is None else dict(precision=precision)
    exported = BACKENDS[backend](path, **options)
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
                backend: str = 'onnxruntime',
                precision: Optional[str] = None) -> BackendModel:
    """Make ``model``, built from the ``scope`` (``mmdet``, ``mmseg`` or
    ``mmpose``) config the file was exported from, run its network in
    ``backend`` (at ``precision``: :func:`check_backend`); the opened
    file."""
    exported = open_backend(path, backend, scope, model, precision)
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
