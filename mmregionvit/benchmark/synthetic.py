"""Synthetic batches for an mmdet, mmseg or mmpose model: random images
and, for training, random targets."""
import argparse
from typing import List, Tuple

import numpy as np
import torch
from mmengine.config import Config


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


def synthetic_batch(cfg: Config, scope: str, args: argparse.Namespace,
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
