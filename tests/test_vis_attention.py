"""Attention recorded from the model, checked by hand on tiny models with
hand-set weights; pictures of a detector, a segmentor and a classifier
(tools/vis_attention.py)."""
import json
import math

import cv2
import numpy as np
import pytest
import torch
from conftest import GOLDEN, load_fixture, official_arch
from test_timm import classification_weights, release_file
from tool_helpers import ROOT, load_tool

from mmregionvit.models import VARIANTS, RegionViT
from mmregionvit.models.regionvit import R2LAttention
from mmregionvit.visualization.attention import (feature_image,
                                                 local_attention,
                                                 padded_tokens,
                                                 record_attention,
                                                 regional_attention)
from mmregionvit.visualization.cam import grad_cam

vis_attention = load_tool('vis_attention')

TINY = dict(
    embed_dim=[16, 16, 32, 64, 128],
    num_heads=[1, 2, 4, 8],
    depth=[1, 1, 1, 1],
    kernel_sizes=[7] * 4)
# Stage 0 of a 100x150 input, by hand: local tokens at stride 4, 25x38 of
# them; the regional embedding pads the image centred to 112x168, 4x6
# regions of 28 pixels, so 4x6 windows of 7x7 tokens: 28x42 tokens, the
# last 3 rows and 4 columns padding.
HEIGHT, WIDTH = 100, 150
SELF = (7 // 2) * 13 + 7 // 2  # relative-table entry of offset (0, 0)


def tiny_model(self_bias: float = 0.0) -> RegionViT:
    """q = k = 0: every score is 0 plus the mask, so each row is uniform
    over the kept keys, except for ``self_bias`` added to each local
    token's score for itself."""
    model = RegionViT(arch=TINY, det_norm=False).eval()
    for m in model.modules():
        if isinstance(m, R2LAttention):
            torch.nn.init.zeros_(m.qkv.weight)
            torch.nn.init.zeros_(m.qkv.bias)
            torch.nn.init.zeros_(m.rel_pos)
    with torch.no_grad():
        model.stages[0].blocks[0].attn.rel_pos[:, SELF] = self_bias
    return model


def stage0(model, size=(HEIGHT, WIDTH)):
    return record_attention(model, torch.randn(1, 3, *size))[0]


def window_rows(valid_rows=7, valid_cols=7, union=False):
    """A 7x7 window's keys a valid query keeps: in the first rows and
    columns; with ``union`` (the bottom-right window, official quirk) those
    in the valid rows *or* columns."""
    rows = np.arange(7)[:, None] < valid_rows
    cols = np.arange(7)[None, :] < valid_cols
    return (rows | cols) if union else (rows & cols)


def test_uniform_attention_by_hand():
    rec = stage0(tiny_model())
    assert (rec.layout.h_win, rec.layout.w_win) == (4, 6)
    # 112x168 padded centred: 12 rows (6 on top), 18 columns (9 on the left)
    assert (rec.region, rec.region_origin) == (28, (-6, -9))
    regional = regional_attention(rec, 0, (10, 10))
    assert regional.shape == (1, 4, 6)
    torch.testing.assert_close(regional, torch.full((1, 4, 6), 1 / 24))
    cases = [
        ((10, 10), window_rows(), 50),  # inside: 1 + 49 keys
        ((10, 90), window_rows(valid_rows=4), 29),  # last row: 3 rows pad
        ((140, 10), window_rows(valid_cols=3), 22),  # last column: 4 pad
        # bottom-right: keys in valid rows or columns, padding included
        ((140, 90), window_rows(4, 3, union=True), 38),
    ]
    for point, kept, count in cases:
        assert kept.sum() + 1 == count
        to_regional, to_local = local_attention(rec, 0, point)
        torch.testing.assert_close(to_regional, torch.tensor([1 / count]))
        expected = torch.from_numpy(kept / count).float()[None]
        torch.testing.assert_close(to_local, expected, msg=str(point))
        # exactly zero on the padding the mask removes
        assert (to_local[0][torch.from_numpy(~kept)] == 0).all()
    # the padded tokens of the bottom-right window: rows 4-6 or columns 3-6
    window, _ = rec.window_of((140, 90))
    torch.testing.assert_close(
        padded_tokens(rec, window), torch.from_numpy(~window_rows(4, 3)))


def test_local_attention_peaked_on_the_token_itself():
    """A bias of ln 9 on each token's score for itself: 9 / (9 + n - 1) on
    the token, 1 / (9 + n - 1) on each of the other n - 1 kept keys."""
    rec = stage0(tiny_model(self_bias=math.log(9)))
    for point, token, kept in [((10, 10), (2, 2), window_rows()),
                               ((10, 90), (1, 2), window_rows(4))]:
        n = int(kept.sum()) + 1
        to_regional, to_local = local_attention(rec, 0, point)
        expected = torch.from_numpy(kept / (9 + n - 1)).float()
        expected[token] = 9 / (9 + n - 1)
        torch.testing.assert_close(to_local[0], expected)
        torch.testing.assert_close(to_regional, torch.tensor([1 / (n + 8)]))


def test_regional_attention_peaked_on_a_bright_region():
    """One bright region of a black 112x112 image (4x4 regions, no
    padding): its normed regional token is (sqrt(15), -1/sqrt(15), ...),
    the others 0. With q = (t, 0, ...) and k = the token's channel 0, the
    bright token scores t * sqrt(15) / sqrt(16) = ln 9 and every other 0:
    9/24 on it, 1/24 on each other region, from whichever region."""
    model = tiny_model()
    with torch.no_grad():
        embed = model.regional_embed
        embed.weight.zero_()
        embed.bias.zero_()
        embed.weight[0, 0] = 1  # channel 0: sum of the red pixels
        attn = model.stages[0].blocks[0].attn
        attn.qkv.bias[0] = 4 * math.log(9) / math.sqrt(15)
        attn.qkv.weight[16, 0] = 1  # key channel 0 = token channel 0
    image = torch.zeros(1, 3, 112, 112)
    image[0, 0, 28:56, 56:84] = 1  # region (1, 2)
    records = record_attention(model, image)
    rec = records[0]
    assert [(r.region, r.region_origin) for r in records] == [(28, (0, 0)),
                                                              (56, (0, 0)),
                                                              (112, (0, 0)),
                                                              (224, (0, 0))]
    expected = torch.full((1, 4, 4), 1 / 24)
    expected[0, 1, 2] = 9 / 24
    for point in [(5, 5), (100, 60), (70, 40)]:
        torch.testing.assert_close(regional_attention(rec, 0, point), expected)


@pytest.mark.parametrize('name', GOLDEN)
def test_rows_sum_to_one_and_padding_gets_zero(name):
    """Every block of every stage: rows sum to 1 over the keys the model
    keeps, the others (padding) get exactly 0; the recorded reference path
    gives the fast path's outputs."""
    fixture = load_fixture(name)
    model = RegionViT(arch=official_arch(fixture)).eval()
    model.init_official_weights()
    x = torch.randn(1, 3, HEIGHT, WIDTH)
    records = record_attention(model, x)
    assert model.fused and all(m.record is None for m in model.modules()
                               if isinstance(m, R2LAttention))
    with torch.no_grad():
        fast = model(x)
    assert len(records) == 4
    for rec, out in zip(records, fast):
        torch.testing.assert_close(rec.features, out[0], rtol=1e-5, atol=1e-5)
        assert len(rec.regional) == len(rec.local) == len(
            model.stages[rec.index].blocks)
        keep = rec.keep[:, None].expand_as(rec.local[0])
        # queries that are tokens of the image (padded ones keep no key)
        valid = keep.any(-1)
        assert valid.any()
        for regional, local in zip(rec.regional, rec.local):
            torch.testing.assert_close(
                regional.sum(-1), torch.ones(regional.shape[:-1]))
            local = local[valid]
            torch.testing.assert_close((local * keep[valid]).sum(-1),
                                       torch.ones(local.shape[:-1]))
            assert (local[~keep[valid]] == 0).all()


@pytest.mark.slow
@pytest.mark.parametrize('variant',
                         ['tiny', 'medium', 'small_w14', 'base_w14_peg'])
def test_official_variants_record(variant):
    """Official variants, one of each structure (3conv and 1conv stems,
    7x7 and 14x14 windows, PEG), at a size that pads every stage: one
    record per stage, rows summing to 1, outputs equal to the fast
    path's."""
    assert variant in VARIANTS
    model = RegionViT(arch=variant).eval()
    x = torch.randn(1, 3, 70, 100)
    records = record_attention(model, x)
    with torch.no_grad():
        fast = model(x)
    assert [r.index for r in records] == [0, 1, 2, 3]
    for rec, out in zip(records, fast):
        torch.testing.assert_close(rec.features, out[0], rtol=1e-4, atol=1e-4)
        assert rec.layout.padded
        keep = rec.keep[:, None].expand_as(rec.local[-1])
        valid = keep.any(-1)
        torch.testing.assert_close((rec.local[-1] * keep).sum(-1)[valid],
                                   torch.ones(int(valid.sum())))
        assert len(rec.regional) == len(model.stages[rec.index].blocks)


def test_fast_path_records_nothing():
    model = tiny_model()
    calls = []
    for m in model.modules():
        if isinstance(m, R2LAttention):
            m.record = calls.append
    with torch.no_grad():
        model(torch.randn(1, 3, 56, 56))
    assert not calls
    model.fused = False
    with torch.no_grad():
        model(torch.randn(1, 3, 56, 56))
    assert len(calls) == 2 * 4  # regional and local of each block


@pytest.mark.parametrize('frozen_stages', [-1, 4])
def test_grad_cam_by_hand(frozen_stages):
    """Stage 3's block made an identity (its residual branches zeroed), so
    its output map is its input A; for the score sum_c u_c A_c the gradient
    is u on every token, and Grad-CAM is relu(sum_c u_c A_c). Frozen
    stages (no parameter needing a gradient) change nothing."""
    model = RegionViT(
        arch=TINY, det_norm=False, frozen_stages=frozen_stages).eval()
    block = model.stages[3].blocks[0]
    for layer in (block.attn.proj, block.mlp.fc2):
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    x = torch.randn(1, 3, HEIGHT, WIDTH)
    u = torch.randn(128)
    records, maps = grad_cam(model, [3], lambda:
                             (model(x)[3] * u[:, None, None]).sum())
    with torch.no_grad():
        out = model(x)[3][0]
    assert list(maps) == [3]
    expected = (u[:, None, None] * out).sum(0).relu()
    assert expected.shape == (4, 5) and (expected == 0).any()
    torch.testing.assert_close(maps[3], expected, rtol=1e-4, atol=1e-5)
    assert [r.index for r in records] == [0, 1, 2, 3]


def test_feature_pictures():
    features = torch.zeros(4, 2, 3)
    features[0, 1, 2] = 8.0
    torch.testing.assert_close(
        feature_image(features, 'mean'),
        torch.tensor([[0.0, 0, 0], [0, 0, 2.0]]))
    rgb = feature_image(torch.randn(8, 5, 6), 'pca')
    assert rgb.shape == (5, 6, 3)
    assert float(rgb.min()) == 0 and float(rgb.max()) == 1


# ---- the tool ----


def write_image(path, h=90, w=130):
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return str(path)


@pytest.fixture
def classifier(tmp_path):
    fixture = load_fixture('tiny3conv_w7')
    weights = release_file(tmp_path, classification_weights(fixture, 5))
    return [
        '--model', 'regionvit_tiny_224', '--checkpoint', weights, '--arch',
        json.dumps(official_arch(fixture))
    ]


def run_tool(capsys, *argv):
    code = vis_attention.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def check_pictures(out_dir, stem, stages=range(4)):
    for kind in ('regional', 'local', 'features', 'cam'):
        for s in stages:
            picture = cv2.imread(str(out_dir / f'{stem}_{kind}_stage{s}.png'))
            assert picture is not None and picture.std() > 0, (kind, s)


def test_classifier_pictures(classifier, tmp_path, capsys):
    image = write_image(tmp_path / 'photo.png')
    code, out, err = run_tool(capsys, *classifier, image, '--out-dir',
                              tmp_path / 'vis', '--heads', 'all', '--features',
                              'pca', '--target-category', 3)
    assert code == 0, err
    assert 'attention recorded on the reference path (fused=False)' in out
    assert '16 pictures written' in out
    check_pictures(tmp_path / 'vis', 'photo')


@pytest.mark.slow
@pytest.mark.parametrize('config', [
    'detection/maskrcnn_regionvit_demo_shapes.py',
    'segmentation/upernet_regionvit_demo_shapes.py'
])
def test_config_pictures(config, tmp_path, capsys):
    image = write_image(tmp_path / 'scene.png')
    code, out, err = run_tool(capsys, '--config', ROOT / 'configs' / config,
                              image, '--out-dir', tmp_path / 'vis', '--point',
                              120, 80)
    assert code == 0, err
    assert 'fused=False' in out and '16 pictures written' in out
    check_pictures(tmp_path / 'vis', 'scene')
    if 'detection' in config:
        code, out, err = run_tool(capsys, '--config',
                                  ROOT / 'configs' / config, image,
                                  '--out-dir', tmp_path / 'none', '--kinds',
                                  'cam', '--det-index', 1000)
        assert code == 2 and err.count('\n') == 1, err
        assert '--det-index 1000 is out of range' in err
        assert not (tmp_path / 'none').exists()


@pytest.mark.slow
def test_keypoint_config_refused_in_one_line(tmp_path, capsys):
    config = ROOT / 'configs/keypoint/td-hm_regionvit_demo_shapes.py'
    code, out, err = run_tool(capsys, '--config', config,
                              write_image(tmp_path / 'a.png'))
    assert code == 2 and err.count('\n') == 1, err
    assert 'mmpose configs are not supported' in err


def test_errors_are_one_line(classifier, tmp_path, capsys):
    image = write_image(tmp_path / 'photo.png')
    text = tmp_path / 'notes.png'
    text.write_text('not an image')
    out_dir = tmp_path / 'vis'
    cases = [
        ([image, '--point', 130, 10], '--point 130 10 is outside'),
        ([image, '--point', 5, -1], '--point 5 -1 is outside'),
        ([image, '--stages', 4], 'stage 4 is out of range'),
        ([image, '--block', 1], '--block 1 is out of range'),
        ([text], 'cannot be read as an image'),
        ([image, '--target-category', 5], 'the model has 5 classes'),
    ]
    for extra, message in cases:
        code, out, err = run_tool(capsys, *classifier, *extra, '--out-dir',
                                  out_dir)
        assert code == 2, extra
        assert err.startswith('error: ') and message in err, err
        assert err.count('\n') == 1, err
        assert not out_dir.exists(), extra  # nothing half-written
