"""Segmentation (mmseg) and keypoint (mmpose) configs: they load and build,
train and predict on synthetic batches, and write server results."""
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = Path(__file__).resolve().parents[1]
SEG_DIR = ROOT / 'configs' / 'segmentation'
POSE_DIR = ROOT / 'configs' / 'keypoint'
# the COCO/ADE20K recipes; the demo configs (tests/test_demo_tasks.py), the
# own-data configs (tests/test_custom_data.py) and the demo's keypoint
# dataset info are not recipes
SEG_CONFIGS = sorted(
    p.name for p in SEG_DIR.glob('*.py')
    if 'demo_shapes' not in p.name and '_custom-' not in p.name)
POSE_CONFIGS = sorted(
    p.name for p in POSE_DIR.glob('*.py')
    if 'demo_shapes' not in p.name and not p.name.endswith('_info.py'))

# A reduced RegionViT for the training steps; its stage channels follow.
MINI_ARCH = dict(
    embed_dim=[16, 16, 32, 64, 128],
    num_heads=[1, 2, 4, 8],
    depth=[1, 1, 1, 1],
    kernel_sizes=[7] * 4)
MINI_CH = MINI_ARCH['embed_dim'][1:]

# configs also run once at their real widths
SEG_REAL_FORWARD = ('upernet_regionvit_s_ade20k.py',
                    'fpn_regionvit_s_ade20k.py')
POSE_REAL_FORWARD = ('td-hm_regionvit-fuse_s_coco-256x192.py', )


def load_cfg(directory: Path, name: str) -> Config:
    cfg = Config.fromfile(directory / name)
    cfg.model.backbone.init_cfg = None
    return cfg


def build(cfg: Config, scope: str):
    from mmengine.model import revert_sync_batchnorm
    init_default_scope(scope)
    registry = pytest.importorskip(f'{scope}.registry').MODELS
    # the heads' SyncBN has no CPU kernel; plain BN computes the same
    return revert_sync_batchnorm(registry.build(cfg.model))


def assert_finite_losses(log_vars: dict) -> None:
    assert 'loss' in log_vars
    for key, value in log_vars.items():
        assert math.isfinite(float(torch.as_tensor(value).detach())), key


def assert_no_decay_on_norms_and_rel_pos(model, optim_wrapper) -> None:
    """The config's paramwise_cfg reaches every backbone norm and table."""
    from torch.nn.modules.batchnorm import _BatchNorm
    groups = optim_wrapper.optimizer.param_groups
    decay = {id(p): g['weight_decay'] for g in groups for p in g['params']}
    base = optim_wrapper.optimizer.defaults['weight_decay']
    assert base > 0
    seen = dict(norm=0, rel_pos=0, other=0)
    for module in model.backbone.modules():
        is_norm = isinstance(module, (torch.nn.LayerNorm, _BatchNorm))
        for name, p in module.named_parameters(recurse=False):
            if is_norm or name == 'rel_pos':
                kind = 'norm' if is_norm else 'rel_pos'
                assert decay[id(p)] == 0, (module, name)
            else:
                kind = 'other'
                assert decay[id(p)] == base, (module, name)
            seen[kind] += 1
    assert all(seen.values()), seen


# ---------------------------------------------------------------- mmseg ---


def seg_batch(num: int, size: int, num_classes: int, seed: int = 0) -> dict:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(num):
        inputs.append(
            torch.randint(
                0, 256, (3, size, size), generator=g, dtype=torch.uint8))
        label = torch.randint(0, num_classes, (1, size, size), generator=g)
        label[:, :4] = 255  # some ignored pixels
        sample = SegDataSample(
            metainfo=dict(
                img_shape=(size, size),
                ori_shape=(size, size),
                pad_shape=(size, size)))
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.slow
@pytest.mark.parametrize('name', SEG_CONFIGS)
def test_seg_config_builds(name):
    pytest.importorskip('mmseg')
    cfg = load_cfg(SEG_DIR, name)
    model = build(cfg, 'mmseg')
    channels = model.backbone.num_features
    head = cfg.model.decode_head
    if 'neck' in cfg.model:  # Semantic FPN
        assert cfg.model.neck.in_channels == channels
        assert cfg.train_cfg.max_iters == 80000
    else:  # UPerNet: all stages, auxiliary head on stage 2
        assert head.in_channels == channels
        assert cfg.model.auxiliary_head.in_channels == channels[2]
        assert cfg.model.auxiliary_head.in_index == 2
        assert cfg.train_cfg.max_iters == 160000
    assert head.num_classes == 150
    assert cfg.model.data_preprocessor.size == (512, 512)
    assert cfg.model.data_preprocessor.mean == [123.675, 116.28, 103.53]
    assert cfg.model.data_preprocessor.bgr_to_rgb
    # multi-scale + flip through tools/test.py --tta
    assert cfg.tta_model.type == 'SegTTAModel'
    assert cfg.tta_pipeline[1].type == 'TestTimeAug'
    if name.endswith('_test-format.py'):
        assert cfg.test_evaluator.format_only
        assert cfg.test_evaluator.output_dir
        assert not any(t.type == 'LoadAnnotations'
                       for t in cfg.test_dataloader.dataset.pipeline)
    if name in SEG_REAL_FORWARD:
        # real channel lists, 64x64, one image
        model.eval()
        data = model.data_preprocessor(seg_batch(1, 64, 150), False)
        with torch.no_grad():
            (pred, ) = model.predict(data['inputs'], data['data_samples'])
        assert pred.pred_sem_seg.data.shape == (1, 64, 64)
        assert pred.seg_logits.data.shape == (150, 64, 64)


def mini_seg_cfg(name: str) -> Config:
    cfg = load_cfg(SEG_DIR, name)
    m = cfg.model
    m.data_preprocessor.size = (64, 64)
    m.backbone.update(arch=MINI_ARCH, drop_path_rate=0.0)
    if 'neck' in m:
        m.neck.update(in_channels=MINI_CH, out_channels=32)
        m.decode_head.update(in_channels=[32] * 4, channels=16)
    else:
        m.decode_head.update(in_channels=MINI_CH, channels=32)
        m.auxiliary_head.update(in_channels=MINI_CH[2], channels=16)
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize(
    'name', ['upernet_regionvit_s_ade20k.py', 'fpn_regionvit_s_ade20k.py'])
def test_seg_train_step_and_predict(name):
    pytest.importorskip('mmseg')
    from mmengine.optim import build_optim_wrapper
    cfg = mini_seg_cfg(name)
    model = build(cfg, 'mmseg')
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert_no_decay_on_norms_and_rel_pos(model, optim_wrapper)

    model.train()
    log_vars = model.train_step(seg_batch(2, 64, 150), optim_wrapper)
    assert_finite_losses(log_vars)
    if 'auxiliary_head' in cfg.model:
        assert 'aux.loss_ce' in log_vars

    preds = model.test_step(seg_batch(2, 64, 150, seed=1))
    assert len(preds) == 2
    for pred in preds:
        assert pred.pred_sem_seg.data.shape == (1, 64, 64)
        assert 0 <= pred.pred_sem_seg.data.min()
        assert pred.pred_sem_seg.data.max() < 150


@pytest.mark.slow
def test_seg_tta_pipeline_scales_the_test_scale(tmp_path):
    """--tta: six ratios of the 2048x512 test scale, each plain and flipped,
    merged by SegTTAModel."""
    pytest.importorskip('mmseg')
    import mmcv
    from mmengine.dataset import Compose, pseudo_collate
    cfg = mini_seg_cfg('upernet_regionvit_s_ade20k.py')
    init_default_scope('mmseg')
    img = np.random.default_rng(0).integers(0, 256, (24, 32, 3), np.uint8)
    label = np.random.default_rng(1).integers(0, 150, (24, 32), np.uint8)
    mmcv.imwrite(img, str(tmp_path / 'a.png'))
    mmcv.imwrite(label, str(tmp_path / 'a_seg.png'))
    pipeline = Compose(cfg.tta_pipeline)
    out = pipeline(
        dict(
            img_path=str(tmp_path / 'a.png'),
            seg_map_path=str(tmp_path / 'a_seg.png'),
            reduce_zero_label=True,
            seg_fields=[]))
    shapes = [tuple(x.shape[1:]) for x in out['inputs']]
    flips = [s.flip for s in out['data_samples']]
    # short side 512 * ratio (the image's long side never binds)
    expect = [(int(512 * r), round(512 * r * 32 / 24))
              for r in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)]
    assert shapes == [s for s in expect for _ in range(2)]
    assert flips == [False, True] * 6

    # SegTTAModel around the reduced model, on the two smallest views
    model = build(cfg, 'mmseg').eval()
    tta_cfg = copy.deepcopy(cfg.tta_model)
    tta_cfg.module = model
    from mmseg.registry import MODELS
    tta = MODELS.build(tta_cfg)
    batch = pseudo_collate(
        [dict(inputs=out['inputs'][:2], data_samples=out['data_samples'][:2])])
    (pred, ) = tta.test_step(batch)
    assert pred.pred_sem_seg.data.shape == (1, 24, 32)


@pytest.mark.slow
def test_seg_test_format_end_to_end(tmp_path):
    """ADE20K test images -> the test-format config's dataset, pipeline and
    (reduced) model -> server PNGs at the original size, labels 1..150."""
    pytest.importorskip('mmseg')
    import mmcv
    from mmengine.dataset import pseudo_collate
    from mmseg.registry import DATASETS, METRICS
    cfg = mini_seg_cfg('upernet_regionvit_s_ade20k_test-format.py')
    model = build(cfg, 'mmseg').eval()
    (tmp_path / 'testing').mkdir()
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), np.uint8)
    mmcv.imwrite(img, str(tmp_path / 'testing' / 'ADE_test_00000001.jpg'))
    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    ds_cfg.data_root = str(tmp_path)
    dataset = DATASETS.build(ds_cfg)
    assert len(dataset) == 1
    item = dataset[0]
    assert item['inputs'].shape == (3, 512, 768)  # short side 512
    assert 'gt_sem_seg' not in item['data_samples']
    preds = model.test_step(pseudo_collate([item]))

    metric_cfg = copy.deepcopy(cfg.test_evaluator)
    metric_cfg.output_dir = str(tmp_path / 'png')
    metric = METRICS.build(metric_cfg)
    metric.dataset_meta = dataset.metainfo
    metric.process({}, [p.to_dict() for p in preds])
    assert metric.evaluate(1) == {}
    png = mmcv.imread(
        str(tmp_path / 'png' / 'ADE_test_00000001.png'), flag='unchanged')
    pred = preds[0].pred_sem_seg.data[0].numpy()
    assert png.shape == pred.shape == (20, 30)
    np.testing.assert_array_equal(png, pred + 1)


# --------------------------------------------------------------- mmpose ---


def coco_pose_meta() -> dict:
    from mmpose.datasets import CocoDataset
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    return parse_pose_metainfo(CocoDataset.METAINFO)


def pose_batch(cfg: Config, num: int, seed: int = 0) -> dict:
    """Synthetic person crops through the config's own top-down transforms
    (box centre/scale, UDP affine to 256x192, UDP heatmap targets)."""
    from mmengine.dataset import Compose, pseudo_collate
    meta = coco_pose_meta()
    steps = [
        t for t in cfg.train_pipeline
        if t.type in ('GetBBoxCenterScale', 'TopdownAffine', 'GenerateTarget',
                      'PackPoseInputs')
    ]
    pipeline = Compose(steps)
    rng = np.random.default_rng(seed)
    items = []
    for i in range(num):
        img = rng.integers(0, 256, (240, 200, 3), np.uint8)
        items.append(
            pipeline(
                dict(
                    img=img,
                    img_shape=(240, 200),
                    ori_shape=(240, 200),
                    bbox=np.array([[30, 20, 170, 220]], np.float32),
                    bbox_score=np.ones(1, np.float32),
                    keypoints=rng.uniform((40, 30), (160, 210),
                                          (1, 17, 2)).astype(np.float32),
                    keypoints_visible=np.ones((1, 17), np.float32),
                    id=i,
                    img_id=i,
                    category_id=1,
                    flip_indices=meta['flip_indices'])))
    return pseudo_collate(items)


@pytest.mark.parametrize('name', POSE_CONFIGS)
def test_pose_config_builds(name):
    pytest.importorskip('mmpose')
    cfg = load_cfg(POSE_DIR, name)
    model = build(cfg, 'mmpose')
    channels = [
        model.backbone.num_features[i] for i in model.backbone.out_indices
    ]
    head = cfg.model.head
    if 'neck' in cfg.model:  # all stages concatenated at stride 4
        assert head.in_channels == sum(channels)
    else:
        assert model.backbone.out_indices == (3, )
        assert head.in_channels == channels[-1]
    assert head.out_channels == 17
    assert cfg.codec.type == 'UDPHeatmap'
    assert cfg.model.test_cfg == dict(
        flip_test=True, flip_mode='heatmap', shift_heatmap=False)
    assert cfg.train_dataloader.batch_size * 8 == \
        cfg.auto_scale_lr.base_batch_size == 512
    if name.endswith('_test-format.py'):
        assert cfg.test_evaluator.format_only
        assert cfg.test_evaluator.outfile_prefix
    if name in POSE_REAL_FORWARD:
        model.eval()
        data = model.data_preprocessor(pose_batch(cfg, 1), False)
        with torch.no_grad():
            heatmaps = model._forward(data['inputs'])
        assert heatmaps.shape == (1, 17, 64, 48)


@pytest.mark.parametrize('name', [
    'td-hm_regionvit_s_coco-256x192.py',
    'td-hm_regionvit-fuse_s_coco-256x192.py'
])
def test_pose_train_step_and_predict(name):
    pytest.importorskip('mmpose')
    from mmengine.optim import build_optim_wrapper
    cfg = load_cfg(POSE_DIR, name)
    cfg.model.backbone.update(arch=MINI_ARCH, drop_path_rate=0.0)
    cfg.model.head.in_channels = \
        sum(MINI_CH) if 'neck' in cfg.model else MINI_CH[-1]
    cfg.model.test_cfg.output_heatmaps = True
    model = build(cfg, 'mmpose')
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert_no_decay_on_norms_and_rel_pos(model, optim_wrapper)

    model.train()
    batch = pose_batch(cfg, 2)
    assert batch['inputs'][0].shape == (3, 256, 192)
    assert batch['data_samples'][0].gt_fields.heatmaps.shape == (17, 64, 48)
    log_vars = model.train_step(batch, optim_wrapper)
    assert_finite_losses(log_vars)
    assert 'acc_pose' in log_vars

    preds = model.test_step(pose_batch(cfg, 2, seed=1))
    assert len(preds) == 2
    for pred in preds:
        assert pred.pred_fields.heatmaps.shape == (17, 64, 48)
        assert pred.pred_instances.keypoints.shape == (1, 17, 2)
        assert pred.pred_instances.keypoint_scores.shape == (1, 17)


def test_pose_test_format_end_to_end(tmp_path):
    """COCO test-dev image info + person boxes -> the test-format config's
    dataset, pipeline and (reduced) model -> the server's keypoint json."""
    pytest.importorskip('mmpose')
    import mmcv
    from mmengine.dataset import pseudo_collate
    from mmpose.registry import DATASETS, METRICS
    cfg = load_cfg(POSE_DIR, 'td-hm_regionvit_s_coco-256x192_test-format.py')
    cfg.model.backbone.update(arch=MINI_ARCH, drop_path_rate=0.0)
    cfg.model.head.in_channels = MINI_CH[-1]
    model = build(cfg, 'mmpose').eval()

    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    image_info = tmp_path / ds_cfg.ann_file
    image_info.parent.mkdir(parents=True)
    image_info.write_text(
        json.dumps(
            dict(
                images=[
                    dict(
                        id=7,
                        file_name='000000000007.jpg',
                        height=120,
                        width=160)
                ],
                categories=[dict(id=1, name='person')])))
    (tmp_path / ds_cfg.data_prefix.img).mkdir()
    mmcv.imwrite(
        np.random.default_rng(0).integers(0, 256, (120, 160, 3), np.uint8),
        str(tmp_path / ds_cfg.data_prefix.img / '000000000007.jpg'))
    boxes = tmp_path / 'boxes.json'
    boxes.write_text(
        json.dumps([
            dict(image_id=7, category_id=1, bbox=[10, 10, 60, 100], score=0.9),
            dict(image_id=7, category_id=1, bbox=[90, 5, 50, 110], score=0.8),
            dict(image_id=7, category_id=3, bbox=[0, 0, 20, 20], score=0.9)
        ]))
    ds_cfg.update(data_root=str(tmp_path), bbox_file=str(boxes))
    dataset = DATASETS.build(ds_cfg)
    assert len(dataset) == 2  # person boxes only
    preds = model.test_step(pseudo_collate([dataset[0], dataset[1]]))

    metric_cfg = copy.deepcopy(cfg.test_evaluator)
    metric_cfg.update(
        ann_file=str(image_info), outfile_prefix=str(tmp_path / 'results'))
    metric = METRICS.build(metric_cfg)
    metric.dataset_meta = dataset.metainfo
    metric.process({}, [p.to_dict() for p in preds])
    assert metric.evaluate(2) == {}
    results = json.loads((tmp_path / 'results.keypoints.json').read_text())
    assert 1 <= len(results) <= 2  # OKS NMS may merge the two
    for res in results:
        assert res['image_id'] == 7 and res['category_id'] == 1
        assert len(res['keypoints']) == 17 * 3


def test_pose_visualizer_draws_keypoints_with_opencv():
    """The keypoint configs' visualizer draws with OpenCV (mmpose 1.3.2's
    own fails on NumPy >= 2.4)."""
    pytest.importorskip('mmpose')
    from mmengine.structures import InstanceData
    from mmpose.registry import VISUALIZERS
    from mmpose.structures import PoseDataSample
    cfg = load_cfg(POSE_DIR, 'td-hm_regionvit_s_coco-256x192.py')
    vis = VISUALIZERS.build(dict(cfg.visualizer, name='test_pose_vis'))
    assert type(vis).__module__.startswith('mmregionvit')
    assert vis.backend == 'opencv'
    vis.set_dataset_meta(coco_pose_meta())
    keypoints = np.stack([np.linspace(10, 90, 17),
                          np.linspace(10, 110, 17)],
                         axis=-1)[None]
    sample = PoseDataSample(
        pred_instances=InstanceData(
            keypoints=keypoints, keypoint_scores=np.ones((1, 17))))
    image = np.zeros((120, 100, 3), np.uint8)
    vis.add_datasample(
        'kpts',
        image,
        data_sample=sample,
        draw_gt=False,
        show=False,
        kpt_thr=0.3)
    drawn = vis.get_image()
    for x, y in keypoints[0].round().astype(int):
        assert drawn[y, x].any(), (x, y)
