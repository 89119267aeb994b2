"""The detection configs train with the official detectron2 recipe: weight
decay groups, iteration schedules, matchers, RetinaNet's loss normaliser,
initialisation and data pipeline."""
import copy
import functools
import glob
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

pytest.importorskip('mmdet')
from detection_helpers import ROOT, build_detector
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from PIL import Image

from mmregionvit.models.regionvit import LayerNorm2d, RegionViTStage

CONFIGS = sorted(
    Path(p).name for p in glob.glob(str(ROOT / 'configs/detection/*.py'))
    if 'demo' not in p and 'custom' not in p)
MASKRCNN = [c for c in CONFIGS if c.startswith('maskrcnn')]
RETINANET = [c for c in CONFIGS if c.startswith('retinanet')]


@functools.lru_cache(maxsize=None)
def _load(name: str) -> Config:
    cfg = Config.fromfile(ROOT / 'configs/detection' / name)
    cfg.model.backbone.init_cfg = None
    return cfg


def load(name: str) -> Config:
    return copy.deepcopy(_load(name))


# detectron2's get_default_optimizer_params, as main_detection.py calls it
# with the official fork's defaults and the official yaml files.
BASE_DECAY = 0.05  # SOLVER.WEIGHT_DECAY
WEIGHT_DECAY_NORM = 0.0
WEIGHT_DECAY_BIAS = 1e-4  # the fork's default: detectron2's WEIGHT_DECAY
D2_NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
                 nn.SyncBatchNorm, nn.GroupNorm, nn.InstanceNorm1d,
                 nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LayerNorm,
                 nn.LocalResponseNorm)


class OfficialLayerNorm2d(nn.Module):
    """Stands for the official ``LayerNorm2d``: a plain ``nn.Module``."""


def official_type(parent: nn.Module, name: str, module: nn.Module) -> type:
    """The type of the official module in the place of ours: the official
    ``LayerNorm2d`` serves the patch embedding and downsampling (our
    ``LayerNorm2d``) and the per-stage detection norms (our ``out_norm``);
    every other module has the same type officially."""
    if isinstance(module, LayerNorm2d) or (isinstance(parent, RegionViTStage)
                                           and name == 'out_norm'):
        return OfficialLayerNorm2d
    return type(module)


def detectron2_decay(model: nn.Module) -> dict:
    """detectron2's weight decay of each parameter, by name."""
    decay = {}
    parents = {'': None}
    for prefix, module in model.named_modules():
        for child_name, child in module.named_children():
            parents[f'{prefix}.{child_name}' if prefix else child_name] = (
                module, child_name)
    for prefix, module in model.named_modules():
        parent, name = parents[prefix] or (None, '')
        is_norm = issubclass(
            official_type(parent, name, module), D2_NORM_TYPES)
        for param_name, _ in module.named_parameters(recurse=False):
            wd = BASE_DECAY
            if is_norm:
                wd = WEIGHT_DECAY_NORM
            if param_name == 'bias':  # overrides come last
                wd = WEIGHT_DECAY_BIAS
            decay[f'{prefix}.{param_name}' if prefix else param_name] = wd
    return decay


def optimizer_decay(model: nn.Module, cfg: Config) -> dict:
    optim = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    by_id = {
        id(p): g['weight_decay']
        for g in optim.param_groups
        for p in g['params']
    }
    assert len(by_id) == sum(1 for _ in model.parameters())
    return {n: by_id[id(p)] for n, p in model.named_parameters()}


@pytest.mark.slow
@pytest.mark.parametrize(
    'name,official_layernorm2d',
    [
        # 3conv patch embedding (2), three downsamplings, four stage norms
        ('maskrcnn_regionvit_s_coco.py', 9),
        # 1conv patch embedding (none)
        ('retinanet_regionvit_b_coco.py', 7),
        ('maskrcnn_regionvit_b-w14-peg_large_ms-3x_coco.py', 7),
    ])
def test_weight_decay_groups_are_detectron2s(name, official_layernorm2d):
    cfg = load(name)
    model = build_detector(cfg)
    mapped = [
        m for p in model.modules() for n, m in p.named_children()
        if official_type(p, n, m) is OfficialLayerNorm2d
    ]
    assert len(mapped) == official_layernorm2d
    expected = detectron2_decay(model)
    ours = optimizer_decay(model, cfg)
    assert ours.keys() == expected.keys()
    wrong = {
        n: (ours[n], expected[n])
        for n in ours if not math.isclose(ours[n], expected[n], rel_tol=1e-9)
    }
    assert not wrong, sorted(wrong.items())[:5]
    no_decay = {n for n, wd in expected.items() if wd == 0}
    assert no_decay and all(
        n.split('.')[-2] in ('regional_norm', 'local_norm', 'mlp_norm')
        for n in no_decay)
    assert ours['backbone.stages.0.blocks.0.attn.rel_pos'] == BASE_DECAY
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.optimizer.lr == 1e-4


def detectron2_lr(it: int, steps: tuple) -> float:
    """detectron2's WarmupMultiStepLR factor at iteration ``it``."""
    warmup = 1.0
    if it < 1000:
        alpha = it / 1000
        warmup = 0.001 * (1 - alpha) + alpha
    return warmup * 0.1**sum(it >= s for s in steps)


@pytest.mark.slow
@pytest.mark.parametrize('name', CONFIGS)
def test_schedule_is_detectron2s_iterations_at_batch_16(name):
    cfg = load(name)
    max_iters, steps = ((270000, (210000, 250000)) if 'ms-3x' in name else
                        (90000, (60000, 80000)))
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.train_cfg.max_iters == max_iters
    assert cfg.train_cfg.val_interval == max_iters  # evaluated at the end
    # batch 16: 2 images on each of 8 GPUs
    assert cfg.train_dataloader.batch_size * 8 == 16
    assert cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.train_dataloader.sampler.type == 'InfiniteSampler'
    warmup, multistep = cfg.param_scheduler
    assert not warmup.by_epoch and not multistep.by_epoch
    # the warmup reaches 1x at iteration 1000 (see test_lr_curve_...)
    assert (warmup.start_factor, warmup.end) == (0.001, 1001)
    assert multistep.milestones == list(steps)
    assert multistep.end == max_iters
    assert cfg.default_hooks.checkpoint.interval == 5000
    assert not cfg.default_hooks.checkpoint.by_epoch


@pytest.mark.slow
@pytest.mark.parametrize(
    'name',
    ['maskrcnn_regionvit_s_coco.py', 'retinanet_regionvit_s_ms-3x_coco.py'])
def test_lr_curve_is_detectron2s(name):
    """The LR the configs' schedulers give at each iteration, stepped as
    the runner steps them, is detectron2's."""
    from mmengine.optim import OptimWrapper
    from mmengine.registry import PARAM_SCHEDULERS
    cfg = load(name)
    steps = tuple(cfg.param_scheduler[1].milestones)
    wrapper = OptimWrapper(
        torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1e-4))
    schedulers = [
        PARAM_SCHEDULERS.build(dict(s, optimizer=wrapper))
        for s in cfg.param_scheduler
    ]
    checks = {
        0, 1, 500, 999, 1000, 1001, steps[0] - 1, steps[0], steps[1] - 1,
        steps[1]
    }
    for it in range(cfg.train_cfg.max_iters):
        if it in checks:
            lr = wrapper.param_groups[0]['lr']
            assert math.isclose(
                lr, 1e-4 * detectron2_lr(it, steps), rel_tol=1e-6), (it, lr)
        if it > steps[1]:
            break
        for s in schedulers:
            s.step()


@pytest.mark.slow
def test_rpn_and_roi_matchers_are_detectron2s():
    for name in MASKRCNN:
        train_cfg = load(name).model.train_cfg
        assert train_cfg.rpn.assigner == dict(
            type='mmregionvit.DetectronMaxIoUAssigner',
            pos_iou_thr=0.7,
            neg_iou_thr=0.3,
            allow_low_quality_matches=True), name
        rpn = train_cfg.rpn.sampler
        assert (rpn.type, rpn.num, rpn.pos_fraction,
                rpn.add_gt_as_proposals) == ('RandomSampler', 256, 0.5, False)
        roi = train_cfg.rcnn.assigner
        assert (roi.type, roi.pos_iou_thr, roi.neg_iou_thr,
                roi.match_low_quality) == ('MaxIoUAssigner', 0.5, 0.5, False)
        rcnn = train_cfg.rcnn.sampler
        assert (rcnn.type, rcnn.num, rcnn.pos_fraction,
                rcnn.add_gt_as_proposals) == ('RandomSampler', 512, 0.25, True)
    for name in RETINANET:
        train_cfg = load(name).model.train_cfg
        assert train_cfg.assigner == dict(
            type='mmregionvit.DetectronMaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.4,
            allow_low_quality_matches=True), name
        assert train_cfg.sampler.type == 'PseudoSampler'


# IoUs of two ground truths (rows) with five priors. Ground truth 0 is
# best matched by prior 1 at IoU 0.25, which overlaps ground truth 1 more.
OVERLAPS = torch.tensor([[0.10, 0.25, 0.05, 0.00, 0.20],
                         [0.00, 0.28, 0.45, 0.20, 0.10]])


def assign(assigner_cfg: dict, overlaps: torch.Tensor = OVERLAPS):
    from mmdet.registry import TASK_UTILS
    init_default_scope('mmdet')
    assigner = TASK_UTILS.build(assigner_cfg)
    return assigner.assign_wrt_overlaps(overlaps, torch.tensor([3, 7]))


def test_rpn_matcher_by_hand():
    rpn = load('maskrcnn_regionvit_s_coco.py').model.train_cfg.rpn.assigner
    result = assign(rpn)
    # priors 0, 3, 4 below 0.3: negative. Prior 2 (0.45) is ground truth
    # 1's best, prior 1 ground truth 0's best (0.25, no minimum IoU): both
    # positive, and prior 1 keeps the ground truth it overlaps most, 1.
    assert result.gt_inds.tolist() == [0, 2, 2, 0, 0]
    assert result.labels.tolist() == [-1, 7, 7, -1, -1]
    # ties are all positive
    tied = torch.tensor([[0.2, 0.2, 0.1], [0.0, 0.1, 0.8]])
    assert assign(rpn, tied).gt_inds.tolist() == [1, 1, 2]
    # without ground truths everything is negative
    assert assign(rpn, torch.zeros(0, 3)).gt_inds.tolist() == [0, 0, 0]


def test_retinanet_matcher_by_hand():
    assigner = load('retinanet_regionvit_s_coco.py').model.train_cfg.assigner
    overlaps = torch.tensor([[0.10, 0.45, 0.05, 0.60],
                             [0.00, 0.30, 0.42, 0.35]])
    # below 0.4 negative, 0.4-0.5 ignored (prior 1), from 0.5 positive
    # (prior 3); prior 2 is ground truth 1's best
    assert assign(assigner, overlaps).gt_inds.tolist() == [0, -1, 2, 1]


def retina_head():
    """The config's RetinaNet head, shrunk: 2 classes, 4 channels, one
    anchor per location on one level of stride 8."""
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    model = load('retinanet_regionvit_s_coco.py').model
    model.bbox_head.update(
        num_classes=2,
        in_channels=4,
        feat_channels=4,
        stacked_convs=1,
        anchor_generator=dict(
            type='AnchorGenerator',
            octave_base_scale=1,
            scales_per_octave=1,
            ratios=[1.0],
            strides=[8]),
        train_cfg=model.train_cfg)
    return MODELS.build(model.bbox_head)


def retina_losses(head, boxes_per_image):
    """The head's losses on a 32x32 batch whose predictions are all zero:
    16 anchors of 8x8 per image, centred on the stride-8 grid."""
    n = len(boxes_per_image)
    zeros = [torch.zeros(n, 2, 4, 4)], [torch.zeros(n, 4, 4, 4)]
    gts = [
        InstanceData(
            bboxes=torch.tensor(b, dtype=torch.float32).reshape(-1, 4),
            labels=torch.zeros(len(b), dtype=torch.long))
        for b in boxes_per_image
    ]
    metas = [dict(img_shape=(32, 32), pad_shape=(32, 32))] * n
    losses = head.loss_by_feat(*zeros, gts, metas)
    return sum(losses['loss_cls']).item(), sum(losses['loss_bbox']).item()


def test_retinanet_loss_normaliser_by_hand():
    """Two steps of detectron2's running normaliser (momentum 0.9, from
    100), computed by hand."""
    head = retina_head()
    # Each ground truth is an anchor moved 1 px right: IoU 7/9 with it
    # (positive), 1/15 with its right neighbour (negative), 0 elsewhere.
    step1 = [[[5, 4, 13, 12], [5, 20, 13, 28]], [[21, 12, 29, 20]]]
    cls1, box1 = retina_losses(head, step1)
    # zero logits: p = 0.5, each anchor-class term is ln2 * 0.25 (focal)
    # times alpha = 0.25 (positive) or 0.75 (negative); 2 images x 16
    # anchors x 2 classes, 3 positive terms
    focal_sum1 = math.log(2) * 0.25 * (0.25 * 3 + 0.75 * 61)
    l1_sum1 = 3 * (1 / 8)  # dx = 1/8 for each positive, deltas predicted 0
    n1 = 0.9 * 100 + 0.1 * 3  # 90.3
    assert cls1 == pytest.approx(focal_sum1 / n1, rel=1e-5)
    assert box1 == pytest.approx(l1_sum1 / n1, rel=1e-5)
    # no ground truth: max(0, 1) positives
    cls2, box2 = retina_losses(head, [[], []])
    n2 = 0.9 * n1 + 0.1 * 1  # 81.37
    assert cls2 == pytest.approx(math.log(2) * 0.25 * 0.75 * 64 / n2, rel=1e-5)
    assert box2 == 0
    assert head.loss_normalizer == pytest.approx(81.37)


@pytest.mark.parametrize(
    'name',
    ['maskrcnn_regionvit_s_coco.py', 'retinanet_regionvit_b-w14-peg_coco.py'])
def test_fpn_and_box_head_start_from_c2_xavier_fill(name):
    """detectron2's c2_xavier_fill: kaiming_uniform_(a=1), uniform in
    +-sqrt(3 / fan_in), zero bias."""
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = load(name).model
    neck = MODELS.build(model.neck)
    neck.init_weights()
    # layers whose fan-in and fan-out differ (else Xavier is the same):
    # the lateral conv of the last stage, and RetinaNet's P6 conv on it
    layers = [neck.lateral_convs[-1].conv]
    if name.startswith('retinanet'):
        layers.append(neck.fpn_convs[-2].conv)
    else:
        bbox_head = MODELS.build(model.roi_head.bbox_head)
        bbox_head.init_weights()
        layers.append(bbox_head.shared_fcs[0])
    for layer in layers:
        w = layer.weight
        bound = math.sqrt(3 / w[0].numel())
        assert w.abs().max() <= bound
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
        assert not layer.bias.any()


def test_mask_predictor_starts_as_detectron2s():
    """detectron2's mask predictor: normal of std 0.001, zero bias; the
    convs before it keep their Kaiming normal (c2_msra_fill)."""
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    torch.manual_seed(0)
    head = MODELS.build(
        load('maskrcnn_regionvit_s_coco.py').model.roi_head.mask_head)
    head.init_weights()
    w = head.conv_logits.weight
    assert w.std().item() == pytest.approx(0.001, rel=0.05)
    assert not head.conv_logits.bias.any()
    conv = head.convs[0].conv.weight  # fan-out 256 * 9: std sqrt(2 / 2304)
    assert conv.std().item() == pytest.approx(math.sqrt(2 / 2304), rel=0.05)


def walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from walk(v)


@pytest.mark.slow
@pytest.mark.parametrize('name', CONFIGS)
def test_pipelines_resize_with_pil_and_keep_polygons(name):
    cfg = load(name)
    for pipeline in (cfg.train_pipeline, cfg.test_pipeline):
        resizes = [t for t in walk(pipeline) if 'Resize' in t['type']]
        assert resizes and all(t['backend'] == 'pillow' for t in resizes)
    if name.startswith('maskrcnn'):
        [load_ann
         ] = [t for t in cfg.train_pipeline if t['type'] == 'LoadAnnotations']
        assert load_ann.poly2mask is False
    fixed = 'ms-3x' not in name  # AUG_MODE FIXED, else DETR
    types = [t['type'] for t in walk(cfg.train_pipeline)]
    assert ('mmregionvit.FixedOrientedResize' in types) == fixed
    assert ('RandomCrop' in types) == (not fixed)
    if not fixed:
        assert types[-2] == 'FilterAnnotations'
        assert ('mmregionvit.BoxesFromMasks' in types) == \
            name.startswith('maskrcnn')


def image(h, w):
    return np.random.RandomState(0).randint(0, 256, (h, w, 3), np.uint8)


def test_fixed_resize_keeps_orientation_and_resizes_as_pil():
    from mmdet.structures.mask import PolygonMasks
    init_default_scope('mmdet')
    resize = Compose([
        dict(
            type='mmregionvit.FixedOrientedResize',
            scale=(1120, 672),
            backend='pillow')
    ])
    for (h, w), out in (((480, 640), (672, 1120)), ((640, 480), (1120, 672)),
                        ((500, 500), (672, 1120))):
        img = image(h, w)
        polygons = PolygonMasks([[np.array([0., 0., w, 0., w, h])]], h, w)
        result = resize(dict(img=img, gt_masks=polygons))
        assert result['img'].shape[:2] == out
        # detectron2's ResizeTransform: PIL, bilinear
        pil = Image.fromarray(img).resize(out[::-1], Image.BILINEAR)
        assert np.array_equal(result['img'], np.asarray(pil))
        assert result['gt_masks'].masks[0][0].tolist() == [
            0, 0, out[1], 0, out[1], out[0]
        ]


def test_boxes_come_from_the_cropped_polygons():
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import PolygonMasks
    init_default_scope('mmdet')
    triangle = PolygonMasks([[np.array([0., 0., 40., 0., 0., 40.])]], 60, 60)
    pipeline = Compose([
        dict(type='mmregionvit.BoxesFromMasks'),
        dict(
            type='FilterAnnotations',
            min_gt_bbox_wh=(1e-5, 1e-5),
            keep_empty=False)
    ])
    cropped = triangle.crop(np.array([20, 0, 60, 60]))  # x from 20 on
    result = pipeline(
        dict(
            gt_bboxes=HorizontalBoxes(torch.tensor([[0., 0., 20., 40.]])),
            gt_bboxes_labels=np.array([1]),
            gt_masks=cropped))
    # the triangle's part right of x=20 spans x 0-20, y 0-20 after the crop
    assert result['gt_bboxes'].tensor.tolist() == [[0., 0., 20., 20.]]
    gone = triangle.crop(np.array([30, 30, 60, 60]))  # nothing left
    result = pipeline(
        dict(
            gt_bboxes=HorizontalBoxes(torch.tensor([[0., 0., 10., 10.]])),
            gt_bboxes_labels=np.array([1]),
            gt_masks=gone))
    assert len(result['gt_bboxes']) == 0
