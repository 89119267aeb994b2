"""The table of official variants is the one source of variant facts: the
configs and the docs agree with it."""
import re
from pathlib import Path

import pytest
from mmengine.config import Config

from mmregionvit.models import VARIANTS
from mmregionvit.models.variants import RELEASE_URL

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(
    p for p in (ROOT / 'configs').glob('*/*.py') if p.parent.name != '_base_'
    and 'demo_shapes' not in p.name and 'keypoints_info' not in p.name)


def test_w14_variants_derive_from_their_bases():
    for name, variant in VARIANTS.items():
        if '_w14' not in name:
            continue
        base = VARIANTS[name.split('_w14')[0]]
        assert variant.arch == dict(
            base.arch, kernel_sizes=[14] * 4, peg=name.endswith('_peg'))
        assert variant.weights == base.weights
        assert variant.train_window == base.train_window == 7
        assert variant.window == 14
        assert variant.abbrev == base.abbrev + name.split(
            name.split('_w14')[0])[1].replace('_', '-')


def test_urls_are_the_official_release():
    for variant in VARIANTS.values():
        assert variant.url == RELEASE_URL + variant.weights
        assert re.fullmatch(r'RegionViT-(Ti|S|M|B)\.pth', variant.weights)


@pytest.mark.slow
@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_config_loads_its_variant_weights(path):
    """Each config's variant (from its file name) has the table's arch and
    ImageNet weights; the own-data detectors start from a whole converted
    detector instead (``load_from``)."""
    cfg = Config.fromfile(path)
    backbone = cfg.model.backbone
    abbrev = re.search(
        r'regionvit(?:-fuse)?_([a-z0-9-]+?)_(?:large_)?(?:ms-3x_)?'
        r'(?:coco|ade20k|custom-)', path.name).group(1)
    [name] = [n for n, v in VARIANTS.items() if v.abbrev == abbrev]
    assert backbone.arch == name
    if 'custom-coco' in path.name:
        assert backbone.init_cfg is None and cfg.load_from
    else:
        assert backbone.init_cfg.checkpoint == VARIANTS[name].url


def test_docs_variant_table_matches():
    readme = (ROOT / 'docs' / 'backbone.md').read_text()
    rows = re.findall(
        r'^\| `(\w+)` \| `\*_regionvit_([a-z0-9-]+)_\*` \| '
        r'`(RegionViT-\w+\.pth)` \((\d+)\) \| ([\d,]+) \|$', readme, re.M)
    assert [r[0] for r in rows] == list(VARIANTS)
    for name, abbrev, weights, window, params in rows:
        variant = VARIANTS[name]
        assert (abbrev, weights, int(window), int(params.replace(',', ''))) \
            == (variant.abbrev, variant.weights, variant.train_window,
                variant.params)


def test_readme_model_zoo_lists_every_variant():
    readme = (ROOT / 'README.md').read_text()
    for family in ('maskrcnn', 'retinanet'):
        for variant in VARIANTS.values():
            assert f'| `{family}_regionvit_{variant.abbrev}_coco.py` |' \
                in readme
