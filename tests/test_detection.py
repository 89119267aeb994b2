"""Detection configs: they build, match the official sizes, and train."""
import glob
from pathlib import Path

import pytest
import torch

pytest.importorskip('mmdet')
from conftest import load_fixture
from detection_helpers import ROOT, build_detector, mini_detector_cfg
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from mmregionvit.models import VARIANTS

CONFIGS = sorted(
    Path(p).name for p in glob.glob(str(ROOT / 'configs/detection/*.py')))
ONE_X = [c for c in CONFIGS if c.endswith('_coco.py') and 'ms-3x' not in c]
# The official model zoo's larger-input ("dagger") detectors.
LARGE = VARIANTS['base_w14_peg']
# Official model-zoo sizes in millions (80 COCO classes), by config name.
OFFICIAL_PARAMS = {
    f'{family}_regionvit_{v.abbrev}{large}_coco.py': params
    for v in VARIANTS.values()
    for large in (('', '_large') if v is LARGE else ('', ))
    for family, params in v.coco_params.items()
}


def load(name: str) -> Config:
    cfg = Config.fromfile(ROOT / 'configs/detection' / name)
    cfg.model.backbone.init_cfg = None
    return cfg


def test_config_set_is_complete():
    for family in ('maskrcnn', 'retinanet'):
        for variant in VARIANTS.values():
            for schedule in ('', '_ms-3x'):
                name = f'{family}_regionvit_{variant.abbrev}{schedule}_coco.py'
                assert name in CONFIGS, name
                large = f'{family}_regionvit_{LARGE.abbrev}_large' \
                    f'{schedule}_coco.py'
                assert large in CONFIGS, large
    assert len(OFFICIAL_PARAMS) == 14


@pytest.mark.slow
@pytest.mark.parametrize('name', ONE_X)
def test_config_builds_with_official_size(name):
    cfg = load(name)
    model = build_detector(cfg)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    if name in OFFICIAL_PARAMS:
        assert abs(params - OFFICIAL_PARAMS[name]) <= 0.1, params
    assert cfg.custom_imports.imports == ['mmregionvit']
    assert cfg.model.data_preprocessor.mean == [103.53, 116.28, 123.675]


@pytest.mark.slow
@pytest.mark.parametrize('name', [c for c in CONFIGS if 'ms-3x' in c])
def test_3x_configs_share_the_1x_model(name):
    cfg = load(name)
    one_x = load(name.replace('_ms-3x', ''))
    assert cfg.model.to_dict() == one_x.model.to_dict()
    assert cfg.train_cfg.max_iters == 3 * one_x.train_cfg.max_iters == 270000
    assert cfg.param_scheduler[1].milestones == [210000, 250000]
    [choice] = [t for t in cfg.train_pipeline if t.type == 'RandomChoice']
    assert choice.transforms[1][1].type == 'RandomCrop'


def synthetic_batch(model, num_images=2, size=(96, 128)):
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    gen = torch.Generator().manual_seed(0)
    h, w = size
    inputs, samples = [], []
    for _ in range(num_images):
        inputs.append(
            torch.randint(0, 255, (3, h, w), generator=gen, dtype=torch.uint8))
        boxes = torch.tensor([[10., 12., 60., 70.], [50., 20., 120., 90.]])
        masks = torch.zeros(2, h, w, dtype=torch.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
            masks[i, y1:y2, x1:x2] = 1
        sample = DetDataSample(
            metainfo=dict(
                img_shape=size, ori_shape=size, scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            bboxes=boxes,
            labels=torch.tensor([1, 5]),
            masks=BitmapMasks(masks.numpy(), h, w))
        samples.append(sample)
    return model.data_preprocessor(
        dict(inputs=inputs, data_samples=samples), True)


@pytest.mark.slow
@pytest.mark.parametrize('kind', ['maskrcnn', 'retinanet'])
def test_training_steps_reduce_loss_and_predict(kind):
    torch.manual_seed(0)
    fixture = load_fixture(f'd2_{kind}_shared')
    cfg = mini_detector_cfg(kind, fixture)
    model = build_detector(cfg)
    model.init_weights()
    cfg.optim_wrapper.optimizer.lr = 1e-3
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    data = synthetic_batch(model)
    model.train()
    losses = []
    for _ in range(6):
        parsed, log = model.parse_losses(model(**data, mode='loss'))
        assert torch.isfinite(parsed)
        optim.update_params(parsed)
        losses.append(parsed.item())
    assert losses[-1] < losses[0], losses
    model.eval()
    with torch.no_grad():
        pred = model(**data, mode='predict')
    assert len(pred) == 2
    inst = pred[0].pred_instances
    assert inst.bboxes.shape[1] == 4 and len(inst) <= 100
    if kind == 'maskrcnn':
        assert inst.masks.shape[1:] == (96, 128)
