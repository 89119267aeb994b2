"""ONNX export: the files run in stock onnxruntime and compute what PyTorch
computes, at other sizes and batch sizes than the traced ones."""
import pytest
import torch
import torchvision

pytest.importorskip('onnxruntime')
import onnx
from conftest import load_fixture, official_arch
from detection_helpers import ROOT, build_detector, mini_detector_cfg
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from tolerances import bound, check_close, record

from mmregionvit.deploy import export as onnx_export
from mmregionvit.deploy.detection import (batched_nms, detectron_nms,
                                          final_detections, is_detectron)
from mmregionvit.models import RegionViT


def op_types(path) -> set:
    model = onnx.load(str(path))
    assert {o.domain for o in model.opset_import} == {''}  # no custom ops
    return {n.op_type for n in model.graph.node}


def check_tensors(sess, module, x):
    """onnxruntime's outputs against ``module``'s within ``onnx_tensor``."""
    record('onnx_tensor',
           onnx_export.check_tensors(sess, module, x, bound('onnx_tensor')))


def check_detector(sess, model, images) -> dict:
    """onnxruntime's detections against ``model``'s within ``onnx_score``
    and ``onnx_box``."""
    stats = onnx_export.check_detector(
        sess,
        model,
        images,
        box_atol=bound('onnx_box'),
        score_atol=bound('onnx_score'))
    record('onnx_score', stats['score'])
    record('onnx_box', stats['box'])
    return stats


def export_backbone(backbone, path, example_shape=(112, 112)):
    graph = onnx_export.backbone_graph(backbone)
    onnx_export.export(graph, torch.randn(1, 3, *example_shape), str(path))
    return graph, onnx_export.session(str(path))


@pytest.mark.slow
@pytest.mark.parametrize('name', ['tiny3conv_w7', 'tiny3conv_w14_peg'])
def test_backbone_matches_official_outputs_at_every_size(name, tmp_path):
    """One file, traced at 112x112 (no padded windows), gives the official
    outputs at all fixture sizes (padded windows, two images), and
    PyTorch's at sizes, batch sizes and paddings it was not traced at."""
    fixture = load_fixture(name)
    release = tmp_path / 'release.pth'
    torch.save({'model': fixture['state_dict']}, release)
    backbone = RegionViT(
        arch=official_arch(fixture),
        init_cfg=dict(type='Pretrained', checkpoint=str(release)))
    backbone.init_weights()
    graph, sess = export_backbone(backbone, tmp_path / 'b.onnx')
    for case in fixture['cases']:
        outs = onnx_export.run(sess, case['input'])
        for out, ref in zip(outs, case['stage_outputs'], strict=True):
            check_close('official', out, ref, 'onnxruntime')
    for batch, size in ((1, (224, 224)), (3, (333, 517)), (1, (50, 300))):
        x = torch.randn(batch, 3, *size)
        check_tensors(sess, backbone, x)
    assert 'Loop' not in op_types(tmp_path / 'b.onnx')


class Session:
    """Stands in for an onnxruntime session that gives ``outputs``."""

    def __init__(self, *outputs: torch.Tensor) -> None:
        self.outputs = outputs

    def run(self, names, feed):
        return [o.numpy() for o in self.outputs]


def test_check_tensors_counts_the_outputs():
    """A file that gives fewer or more outputs than the module fails the
    check, even if those it gives match."""
    x = torch.randn(1, 3, 4, 4)
    maps = (x * 2, x + 1)
    assert onnx_export.check_tensors(Session(*maps), lambda _: maps, x, 0) == 0
    for outputs in (maps[:1], (*maps, x)):
        with pytest.raises(
                onnx_export.CheckFailed,
                match=f'gives {len(outputs)} outputs, PyTorch 2'):
            onnx_export.check_tensors(Session(*outputs), lambda _: maps, x, 0)


@pytest.mark.slow
def test_full_backbone(tmp_path):
    """RegionViT-S itself, at ImageNet size and another size and batch."""
    backbone = RegionViT(arch='small').eval()
    backbone.init_weights()
    _, sess = export_backbone(backbone, tmp_path / 's.onnx', (224, 224))
    for batch, size in ((1, (224, 224)), (3, (333, 517))):
        x = torch.randn(batch, 3, *size)
        check_tensors(sess, backbone, x)


@pytest.mark.slow
def test_full_retinanet(tmp_path):
    """The RetinaNet-S config itself (random weights, all scores kept): the
    same detections on an image no multiple of 32, and at another size
    with two images."""
    cfg = Config.fromfile(ROOT /
                          'configs/detection/retinanet_regionvit_s_coco.py')
    cfg.model.backbone.init_cfg = None
    cfg.model.test_cfg.score_thr = 0.0
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    model.init_weights()
    graph = onnx_export.model_graph(model, 'mmdet')
    images = onnx_export.random_images(1, (203, 301))
    path = str(tmp_path / 'retinanet_s.onnx')
    onnx_export.export(graph,
                       onnx_export.detector_batch(model, images)[1], path)
    sess = onnx_export.session(path)
    for batch, size in ((1, (203, 301)), (2, (250, 181))):
        images = onnx_export.random_images(batch, size, seed=batch)
        stats = check_detector(sess, model, images)
        assert stats['detections'] == 100 * batch


def perturbed_detector(kind: str, **test_cfg):
    """A reduced detector with random weights far enough from their
    initial values that scores do not tie; with the configs' stochastic
    depth, which inference (and so the export) must leave out."""
    cfg = mini_detector_cfg(kind, load_fixture(f'd2_{kind}_shared'))
    cfg.model.backbone.drop_path_rate = 0.2
    target = cfg.model.test_cfg.rcnn if kind == 'maskrcnn' \
        else cfg.model.test_cfg
    target.update(score_thr=0.0, **test_cfg)
    torch.manual_seed(0)
    model = build_detector(cfg).eval()
    model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def with_mmdet_heads(model):
    """The detector with mmdet's heads, box coders and RoI level
    assignment in place of the detectron2 ones (the same weights)."""
    from mmdet.models.dense_heads import RetinaHead, RPNHead
    from mmdet.models.roi_heads import (FCNMaskHead, Shared2FCBBoxHead,
                                        SingleRoIExtractor)
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
    if hasattr(model, 'roi_head'):
        roi = model.roi_head
        model.rpn_head.__class__ = RPNHead
        model.rpn_head.bbox_coder = DeltaXYWHBBoxCoder()
        roi.bbox_head.__class__ = Shared2FCBBoxHead
        roi.bbox_head.bbox_coder = DeltaXYWHBBoxCoder(
            target_stds=[0.1, 0.1, 0.2, 0.2])
        roi.mask_head.__class__ = FCNMaskHead
        for extractor in (roi.bbox_roi_extractor, roi.mask_roi_extractor):
            extractor.__class__ = SingleRoIExtractor
    else:
        model.bbox_head.__class__ = RetinaHead
        model.bbox_head.bbox_coder = DeltaXYWHBBoxCoder()
    return model


@pytest.mark.slow
@pytest.mark.parametrize('heads', ['detectron2', 'mmdet'])
@pytest.mark.parametrize('kind', ['retinanet', 'maskrcnn'])
def test_detector_matches_predict(kind, heads, tmp_path):
    """onnxruntime's detections are ``model.predict``'s, with the configs'
    detectron2 heads and with mmdet's: 100 per image with the score
    threshold at 0, on images no multiple of 32 (the graph pads them), at
    the traced size and at another one with two images."""
    model = perturbed_detector(kind)
    if heads == 'mmdet':
        model = with_mmdet_heads(model)
    assert is_detectron(model) == (heads == 'detectron2')
    graph = onnx_export.model_graph(model, 'mmdet')
    images = onnx_export.random_images(1, (203, 301))
    example = onnx_export.detector_batch(model, images)[1]
    path = tmp_path / f'{kind}.onnx'
    onnx_export.export(graph, example, str(path))
    ops = op_types(path)
    assert 'NonMaxSuppression' in ops
    sess = onnx_export.session(str(path))
    for batch, size in ((1, (203, 301)), (2, (250, 181))):
        images = onnx_export.random_images(batch, size, seed=batch)
        stats = check_detector(sess, model, images)
        assert stats['detections'] == 100 * batch
    if kind == 'maskrcnn':
        # a file without the masks output fails the check
        outputs = onnx_export.run(sess,
                                  onnx_export.detector_batch(model, images)[1])
        with pytest.raises(onnx_export.CheckFailed, match='gives 2 outputs'):
            onnx_export.check_detector(Session(*outputs[:2]), model, images)
        assert 'RoiAlign' in ops
        align = [
            n for n in onnx.load(str(path)).graph.node
            if n.op_type == 'RoiAlign'
        ]
        for node in align:
            mode = {
                a.name: a.s
                for a in node.attribute
            }['coordinate_transformation_mode']
            assert mode == b'half_pixel'


@pytest.mark.slow
def test_detector_without_detections_and_check_failure(tmp_path):
    """No score above the threshold: no detections in either, all rows
    padding. A file that does not compute the model's detections (here
    after the model changed) is refused."""
    model = perturbed_detector('retinanet')
    model.bbox_head.test_cfg.score_thr = 0.9
    graph = onnx_export.model_graph(model, 'mmdet')
    images = onnx_export.random_images(1, (96, 128))
    inputs = onnx_export.detector_batch(model, images)[1]
    onnx_export.export(graph, inputs, str(tmp_path / 'r.onnx'))
    sess = onnx_export.session(str(tmp_path / 'r.onnx'))
    assert onnx_export.check_detector(sess, model, images)['detections'] == 0
    dets, labels = onnx_export.run(sess, inputs)
    assert (labels == -1).all() and (dets == 0).all()
    assert dets.shape == (1, model.bbox_head.test_cfg.max_per_img, 5)
    with torch.no_grad():
        model.bbox_head.retina_cls.bias.add_(10.0)
    with pytest.raises(onnx_export.CheckFailed, match='finds 0 detections'):
        onnx_export.check_detector(sess, model, images)


def test_final_detections_drop_empty_boxes_for_detectron2_heads():
    """Scaled to the original image and clipped, a box right of it is
    empty: detectron2's heads drop it, mmdet's keep it."""
    found = dict(
        bboxes=torch.tensor([[10., 10., 20., 20.], [120., 5., 130., 15.]]),
        scores=torch.tensor([.9, .8]),
        labels=torch.tensor([1, 2]))
    out = final_detections(found, (.5, .5), (200, 200), detectron=True)
    assert out['labels'].tolist() == [1]
    torch.testing.assert_close(out['bboxes'],
                               torch.tensor([[20., 20., 40., 40.]]))
    out = final_detections(found, (.5, .5), (200, 200), detectron=False)
    assert out['labels'].tolist() == [1, 2]


def exported_nms(module, inputs, tmp_path) -> list:
    """The first image's kept indices from ``module`` exported to ONNX and
    run in onnxruntime."""
    path = str(tmp_path / 'nms.onnx')
    torch.onnx.export(
        module, inputs, path, dynamo=False, opset_version=onnx_export.OPSET)
    sess = onnx_export.session(path)
    feed = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs)}
    return sess.run(None, feed)[0][0].tolist()


class DetectronNMS(torch.nn.Module):

    def forward(self, boxes, scores, idxs, valid):
        return detectron_nms(boxes, scores, idxs, valid, 3, 0.5, 5)


@pytest.mark.parametrize('candidates', [1000, 1001])
def test_detectron_nms_is_torchvisions(candidates, tmp_path):
    """detectron2's NMS (torchvision's batched_nms on a CPU) offsets the
    boxes by group up to 1000 candidates and runs each group alone above
    that; so do the graphs, in PyTorch and onnxruntime. Boxes A and B of
    group 1 (IoU 0.497, kept at 0.5) are offset past 2^21 by the far box
    of group 0: B's x rounds and B is suppressed; without the offsets, it
    is kept. Small boxes of group 2, of lower and distinct scores, fill up
    the candidates."""
    far = 2.1e6
    filler = torch.arange(candidates - 3, dtype=torch.float)[:, None] * 2
    boxes = torch.cat([
        torch.tensor([[far, far, far + 10, far + 10], [0, 0, 10, 10],
                      [3.36, 0, 13.36, 10]]),
        torch.cat([filler + 20, filler * 0 + 20, filler + 21, filler * 0 + 21],
                  1)
    ])[None]
    scores = torch.cat([torch.tensor([.5, .9, .8]),
                        .01 - filler[:, 0] * 1e-6])[None]
    idxs = torch.cat(
        [torch.tensor([0, 1, 1]),
         torch.full((candidates - 3, ), 2)])[None]
    valid = torch.ones_like(idxs, dtype=torch.bool)
    ref = torchvision.ops.batched_nms(boxes[0], scores[0], idxs[0], 0.5)[:5]
    assert (2 in ref.tolist()) == (candidates > 1000)
    got = detectron_nms(boxes, scores, idxs, valid, 3, 0.5, 5)[0]
    assert got.tolist() == ref.tolist()
    assert exported_nms(DetectronNMS(), (boxes, scores, idxs, valid),
                        tmp_path) == ref.tolist()


class BatchedNMS(torch.nn.Module):

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        self.cfg = cfg

    def forward(self, boxes, scores, idxs, valid):
        return batched_nms(boxes, scores, idxs, valid, self.cfg, 5)


@pytest.mark.parametrize('split_thr', [10000, 3])
def test_batched_nms_offsets_boxes_as_mmcv(split_thr, tmp_path):
    """mmcv runs NMS on the boxes offset by class, which rounds them (also
    past ``split_thr`` candidates, class by class); so do the graphs, in
    PyTorch and onnxruntime. Boxes A and B of class 1 have an IoU of
    0.497, which NMS at 0.5 keeps; offset past 2^21 by the far box of class
    0, B's x rounds from 3.36 to 3.25: IoU 0.509, B is suppressed."""
    from mmcv.ops import batched_nms as mmcv_batched_nms
    far = 2.1e6
    boxes = torch.tensor([[[far, far, far + 10, far + 10], [0, 0, 10, 10],
                           [3.36, 0, 13.36, 10], [0, 0, 1, 1]]])
    scores = torch.tensor([[0.5, 0.9, 0.8, 0.1]])
    idxs = torch.tensor([[0, 1, 1, 0]])
    valid = torch.tensor([[True, True, True, False]])  # 3 candidates
    assert 1 in torchvision.ops.nms(boxes[0, 1:3], scores[0, 1:3], 0.5)
    cfg = dict(type='nms', iou_threshold=0.5, split_thr=split_thr)
    _, ref = mmcv_batched_nms(boxes[0, :3], scores[0, :3], idxs[0, :3], cfg)
    assert ref.tolist() == [1, 0]
    expected = [1, 0, -1, -1, -1]
    assert batched_nms(boxes, scores, idxs, valid, cfg,
                       5)[0].tolist() == expected
    assert exported_nms(
        BatchedNMS(cfg), (boxes, scores, idxs, valid), tmp_path) == expected


TINY = dict(
    embed_dim=[16, 16, 32, 64, 128],
    depth=[1, 1, 1, 1],
    num_heads=[1, 2, 4, 8],
    kernel_sizes=[7] * 4)
# the demo configs have reduced backbones; Semantic FPN gets one here
TENSOR_MODE = {
    'configs/segmentation/upernet_regionvit_demo_shapes.py': {},
    'configs/segmentation/fpn_regionvit_s_ade20k.py': {
        'model.neck.in_channels': [16, 32, 64, 128],
        'model.neck.out_channels': 32,
        'model.decode_head.in_channels': [32] * 4,
        'model.decode_head.channels': 32,
    },
    'configs/keypoint/td-hm_regionvit_demo_shapes.py': {},
}


@pytest.mark.slow
@pytest.mark.parametrize('config', sorted(TENSOR_MODE))
def test_tensor_mode_models(config, tmp_path):
    """Segmentation logits and pose heatmaps, at two sizes and batches."""
    from mmengine.registry import MODELS, init_default_scope

    from mmregionvit.utils.config import load_config
    cfg = load_config(str(ROOT / config), TENSOR_MODE[config])
    cfg.model.backbone.init_cfg = None
    if TENSOR_MODE[config]:
        cfg.model.backbone.arch = TINY
    scope = cfg.default_scope
    init_default_scope(scope)
    model = MODELS.build(cfg.model).eval()
    graph = onnx_export.model_graph(model, scope)
    path = str(tmp_path / 'm.onnx')
    onnx_export.export(graph, torch.randn(1, 3, 96, 80), path)
    sess = onnx_export.session(path)
    for batch, size in ((1, (96, 80)), (2, (131, 77))):
        x = torch.randn(batch, 3, *size)
        check_tensors(sess, graph.module, x)
