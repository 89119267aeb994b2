"""Running an exported file in place of a model's network.

:func:`use_onnxruntime` hands a model's network computation to an
onnxruntime session and keeps everything around it: the data
preprocessor, and the post-processing that turns the file's outputs into
the data samples the OpenMMLab inferencers draw and save. So the
exported file can be run through the same tools as the PyTorch model.
"""
from typing import List

import torch.nn as nn
from torch import Tensor

from .export import run, session


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


def _outputs(sess) -> List[str]:
    return [o.name for o in sess.get_outputs()]


def _check_task(sess, expected: List[str], scope: str, path: str) -> None:
    names = _outputs(sess)
    if names != expected:
        raise ValueError(f'{path} has outputs {names}, but a {scope} config '
                         f'needs a file with outputs {expected}: export it '
                         'with tools/export_onnx.py model CONFIG.')


def use_onnxruntime(model: nn.Module, path: str, scope: str) -> nn.Module:
    """Make ``model``, built from the ``scope`` (``mmdet``, ``mmseg`` or
    ``mmpose``) config the file was exported from, run its network in
    onnxruntime."""
    sess = session(path)
    if scope == 'mmdet':
        expected = ['dets', 'labels']
        if getattr(model, 'with_mask', False):
            expected.append('masks')
        _check_task(sess, expected, scope, path)
        model.predict = _DetectorPredict(model, sess)
        return model
    name = {'mmseg': 'seg_logits', 'mmpose': 'heatmaps'}[scope]
    _check_task(sess, [name], scope, path)
    # the file computes what the backbone, neck and head compute: the
    # model's own predict wraps it (sliding windows, flip test, decoding)
    model.extract_feat = lambda inputs: inputs
    head = model.decode_head if scope == 'mmseg' else model.head
    head.forward = lambda inputs: run(sess, inputs)[0].to(inputs.device)
    return model


class _DetectorPredict:
    """``predict`` of an mmdet detector from the exported file's
    detections, rescaled to the original image (masks pasted there)."""

    def __init__(self, model: nn.Module, sess) -> None:
        self.model = model
        self.sess = sess

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
            found = detections(run(self.sess, inputs[None, :, :h, :w]), 0)
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
