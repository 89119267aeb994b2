"""The RegionViT classifiers registered with timm."""
import re
from pathlib import Path

import pytest
import timm
import torch
from conftest import (GOLDEN, load_fixture, official_arch,
                      official_window_conversion)
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from tolerances import check_close

from mmregionvit.models import VARIANTS, RegionViTClassifier
from mmregionvit.models.checkpoint import (CheckpointMismatchError,
                                           checkpoint_filter_fn)
from mmregionvit.models.timm_models import filter_pretrained, model_name

OFFICIAL_NAMES = [
    'regionvit_tiny_224', 'regionvit_small_224', 'regionvit_small_w14_224',
    'regionvit_small_w14_peg_224', 'regionvit_medium_224',
    'regionvit_base_224', 'regionvit_base_w14_224',
    'regionvit_base_w14_peg_224'
]
DET_NORMS = ('norm0.', 'norm1.', 'norm2.', 'norm3.')


def release_file(tmp_path, state_dict, name='release.pth') -> str:
    """``state_dict`` saved as the official release files are."""
    path = str(tmp_path / name)
    torch.save({'model': state_dict}, path)
    return path


def classification_weights(fixture: dict, classes: int = None) -> dict:
    """The fixture's official weights without the detection norms (as an
    ImageNet release file holds them), the head cut or widened to
    ``classes``."""
    sd = {
        k: v
        for k, v in fixture['state_dict'].items()
        if not k.startswith(DET_NORMS)
    }
    if classes is not None:
        w, b = sd['head.weight'], sd['head.bias']
        extra = max(classes - len(w), 0)
        sd['head.weight'] = torch.cat([w, torch.randn(extra,
                                                      w.shape[1])])[:classes]
        sd['head.bias'] = torch.cat([b, torch.randn(extra)])[:classes]
    return sd


def from_fixture(fixture: dict, path: str, **kwargs) -> RegionViTClassifier:
    """The fixture's official model through timm, weights from ``path``."""
    kwargs.setdefault('arch', official_arch(fixture))
    return timm.create_model(
        'regionvit_tiny_224',
        pretrained=True,
        num_classes=10,
        pretrained_cfg_overlay=dict(file=path, num_classes=10),
        **kwargs).eval()


def test_every_official_variant_is_registered():
    assert sorted(timm.list_models('regionvit_*')) == sorted(OFFICIAL_NAMES)
    assert sorted(map(model_name, VARIANTS)) == sorted(OFFICIAL_NAMES)


@pytest.mark.parametrize('name', sorted(VARIANTS))
def test_pretrained_cfg_is_the_official_evaluation(name):
    """datasets.py build_transform: Resize(int(256 / 224 * 224)) bicubic,
    CenterCrop(224), ImageNet mean and std; the release file's URL."""
    variant = VARIANTS[name]
    cfg = timm.models.get_pretrained_cfg(model_name(name)).to_dict()
    assert cfg['url'] == variant.url
    assert cfg['input_size'] == (3, 224, 224)
    assert int(224 / cfg['crop_pct']) == int(256 / 224 * 224) == 256
    assert cfg['interpolation'] == 'bicubic'
    assert cfg['crop_mode'] == 'center'
    assert tuple(cfg['mean']) == IMAGENET_DEFAULT_MEAN
    assert tuple(cfg['std']) == IMAGENET_DEFAULT_STD
    assert cfg['num_classes'] == 1000 and cfg['classifier'] == 'head'
    assert cfg['tag'] == ('in1k' if variant.window == 7 else 'in1k_w7')
    model = timm.create_model(model_name(name))
    for conv in cfg['first_conv']:
        assert model.get_submodule(conv).in_channels == 3


@pytest.mark.parametrize('name', sorted(VARIANTS))
def test_variant_params_equal_the_official_classifier(name):
    model = timm.create_model(model_name(name))
    assert isinstance(model, RegionViTClassifier)
    assert sum(p.numel() for p in model.parameters()) == VARIANTS[name].params
    assert model.num_classes == 1000 and model.num_features == \
        VARIANTS[name].arch['embed_dim'][-1]


def test_classifier_is_the_backbone_with_norm_and_head():
    model = timm.create_model('regionvit_tiny_224')
    own = {n.split('.')[0] for n, _ in model.named_children()}
    assert own == {'backbone', 'norm', 'head'}
    assert model.norm.eps == 1e-6
    assert not model.backbone.det_norm


@pytest.mark.parametrize('fused', [True, False], ids=['fused', 'reference'])
@pytest.mark.parametrize('name', GOLDEN)
def test_logits_equal_official(name, fused, tmp_path):
    fixture = load_fixture(name)
    path = release_file(tmp_path, fixture['state_dict'])
    model = from_fixture(fixture, path, det_norm=True, fused=fused)
    for case in fixture['cases']:
        with torch.no_grad():
            logits = model(case['input'])
        check_close('official', logits, case['logits'],
                    f'{name} {tuple(case["input"].shape)}')


def test_release_file_as_it_is(tmp_path):
    """A release file (1000 classes, no detection norms) loads with the
    variant's defaults; built with det_norm, the norms start at ones and
    zeros."""
    fixture = load_fixture('tiny3conv_w7')
    sd = classification_weights(fixture, 1000)
    path = release_file(tmp_path, sd)
    for det_norm in (False, True):
        model = timm.create_model(
            'regionvit_tiny_224',
            pretrained=True,
            arch=official_arch(fixture),
            det_norm=det_norm,
            pretrained_cfg_overlay=dict(file=path)).eval()
        assert model.num_classes == 1000
        for ours, official in (('head.weight', 'head.weight'), ('norm.bias',
                                                                'norm.bias'),
                               ('backbone.stages.3.blocks.0.attn.rel_pos',
                                'layers.3.block.1.attn.rel_pos')):
            torch.testing.assert_close(model.state_dict()[ours], sd[official])
        if det_norm:
            norm = model.backbone.stages[2].out_norm
            assert norm.weight.eq(1).all() and not norm.bias.any()
        with torch.no_grad():
            assert model(fixture['cases'][0]['input']).shape == (2, 1000)


@pytest.mark.parametrize('name', GOLDEN)
def test_num_classes_0_loads_without_the_head(name, tmp_path):
    fixture = load_fixture(name)
    path = release_file(tmp_path, fixture['state_dict'])
    model = timm.create_model(
        'regionvit_tiny_224',
        pretrained=True,
        num_classes=0,
        det_norm=True,
        arch=official_arch(fixture),
        pretrained_cfg_overlay=dict(file=path)).eval()
    assert model.num_classes == 0
    assert not any(k.startswith('head.') for k in model.state_dict())
    w, b = fixture['state_dict']['head.weight'], fixture['state_dict'][
        'head.bias']
    case = fixture['cases'][1]
    with torch.no_grad():
        features = model(case['input'])
    assert features.shape == (2, model.num_features)
    check_close('official', features @ w.T + b, case['logits'], 'logits')


@pytest.mark.parametrize('out_indices', [(0, 1, 2, 3), (1, 3), (0, )])
def test_features_only(out_indices, tmp_path):
    fixture = load_fixture('tiny3conv_w14_peg')
    path = release_file(tmp_path, fixture['state_dict'])
    model = timm.create_model(
        'regionvit_tiny_224',
        pretrained=True,
        features_only=True,
        out_indices=out_indices,
        det_norm=True,
        arch=official_arch(fixture),
        pretrained_cfg_overlay=dict(file=path)).eval()
    dims = fixture['official_kwargs']['embed_dim'][1:]
    info = model.feature_info
    assert info.channels() == [dims[i] for i in out_indices]
    assert info.reduction() == [4 * 2**i for i in out_indices]
    assert info.module_name() == [f'backbone.stages.{i}' for i in out_indices]
    # stages after the last taken one are dropped, with the norm and head
    assert len(model.model.backbone.stages) == max(out_indices) + 1
    assert not any(
        k.startswith(('model.head.', 'model.norm.'))
        for k in model.state_dict())
    for case in fixture['cases']:
        with torch.no_grad():
            maps = model(case['input'])
        assert len(maps) == len(out_indices)
        for i, out in zip(out_indices, maps):
            check_close('official', out, case['stage_outputs'][i], f'map {i}')


@pytest.mark.slow
def test_feature_info_of_every_variant():
    for name in VARIANTS:
        model = timm.create_model(model_name(name), features_only=True)
        dims = VARIANTS[name].arch['embed_dim'][1:]
        assert model.feature_info.channels() == dims
        assert model.feature_info.reduction() == [4, 8, 16, 32]


def test_timm_interface(tmp_path):
    fixture = load_fixture('tiny1conv_w7')
    model = from_fixture(
        fixture, release_file(tmp_path, fixture['state_dict']), det_norm=True)
    x = torch.randn(2, 3, 224, 448)  # 1x2 regional tokens at stride 224
    with torch.no_grad():
        tokens = model.forward_features(x)
        assert tokens.shape == (2, 2, 128)
        pooled = model.forward_head(tokens, pre_logits=True)
        torch.testing.assert_close(pooled, tokens.mean(1))
        torch.testing.assert_close(model.forward_head(tokens), model(x))
        final, maps = model.forward_intermediates(x)
        torch.testing.assert_close(final, tokens)
        assert [m.shape[1] for m in maps] == [16, 32, 64, 128]
        early = model.forward_intermediates(
            x, indices=[1], intermediates_only=True)
        torch.testing.assert_close(early[0], maps[1])
        last, = model.forward_intermediates(
            x, indices=1, intermediates_only=True)
        torch.testing.assert_close(last, maps[3])
    assert model.get_classifier() is model.head
    model.reset_classifier(5)
    assert model.num_classes == 5
    with torch.no_grad():
        assert model(x).shape == (2, 5)
    model.reset_classifier(0, global_pool='')
    assert model.num_classes == 0
    with torch.no_grad():
        torch.testing.assert_close(model(x), tokens)
    with pytest.raises(ValueError, match="'avg'"):
        model.reset_classifier(3, global_pool='max')
    with pytest.raises(ValueError, match='NCHW'):
        model.forward_intermediates(x, output_fmt='NHWC')


def test_custom_arch_and_kwargs():
    arch = dict(
        embed_dim=[16, 16, 32, 64, 128],
        num_heads=[1, 2, 4, 8],
        depth=[1, 1, 2, 1],
        kernel_sizes=[7, 7, 7, 7],
        patch_conv_type='1conv')
    model = timm.create_model(
        'regionvit_small_224',
        arch=arch,
        num_classes=10,
        drop_path_rate=0.1,
        in_chans=1)
    assert model.backbone.arch['patch_conv_type'] == '1conv'
    assert model.backbone.in_channels == 1
    assert model(torch.randn(2, 1, 64, 80)).shape == (2, 10)
    with pytest.raises(KeyError, match='num_classes'):
        timm.create_model(
            'regionvit_small_224', arch=dict(arch, num_classes=10))


def test_grad_checkpointing_gives_same_gradients():
    model = timm.create_model('regionvit_tiny_224', num_classes=3)
    x = torch.randn(1, 3, 112, 112)
    grads = []
    for enable in (False, True):
        model.set_grad_checkpointing(enable)
        assert all(s.with_cp == enable for s in model.backbone.stages)
        model.zero_grad()
        model(x).sum().backward()
        grads.append(model.backbone.stages[2].blocks[0].attn.qkv.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_window_conversion_and_peg_from_window7_weights(tmp_path):
    """The w14 variants' path: 7x7-window weights into a 14x14 PEG model
    (converted as the official tool converts them, PEG at zero); into a 7x7
    PEG model PEG changes nothing."""
    fixture = load_fixture('tiny3conv_w7')
    path = release_file(tmp_path, fixture['state_dict'])
    w14_arch = dict(official_arch(fixture), kernel_sizes=[14] * 4, peg=True)
    w14 = from_fixture(fixture, path, det_norm=True, arch=w14_arch)
    official = official_window_conversion(fixture['state_dict'], 14)
    assert w14.backbone.regional_embed.weight.shape[-1] == 56
    torch.testing.assert_close(w14.backbone.regional_embed.weight.data,
                               official['cls_token.proj.weight'])
    assert w14.backbone.stages[1].blocks[0].attn.rel_pos.shape[-1] == 27**2
    assert not w14.backbone.stages[0].peg.weight.any()
    converted = from_fixture(
        fixture,
        release_file(tmp_path, official, 'w14.pth'),
        det_norm=True,
        arch=w14_arch)
    peg = from_fixture(
        fixture,
        path,
        det_norm=True,
        arch=dict(official_arch(fixture), peg=True))
    case = fixture['cases'][0]  # 112x112: no padded tokens to reset
    with torch.no_grad():
        # the same model and kernels on the same weights
        torch.testing.assert_close(
            w14(case['input']), converted(case['input']), rtol=0, atol=1e-6)
        check_close('official', peg(case['input']), case['logits'], 'peg')


def test_in_chans_adapts_both_input_convs(tmp_path):
    fixture = load_fixture('tiny3conv_w7')
    path = release_file(tmp_path, fixture['state_dict'])
    model = from_fixture(fixture, path, det_norm=True, in_chans=1)
    sd = fixture['state_dict']
    torch.testing.assert_close(
        model.backbone.patch_embed.proj[0].weight,
        sd['patch_embed.proj.0.weight'].sum(1, keepdim=True))
    torch.testing.assert_close(
        model.backbone.regional_embed.weight,
        sd['cls_token.proj.weight'].sum(1, keepdim=True))


def test_mismatched_checkpoint_is_an_error(tmp_path):
    fixture = load_fixture('tiny3conv_w7')
    path = release_file(tmp_path, fixture['state_dict'])
    with pytest.raises(CheckpointMismatchError) as info:
        from_fixture(
            fixture,
            path,
            det_norm=True,
            arch=dict(official_arch(fixture), depth=[1, 1, 3, 1]))
    assert info.value.summary.startswith(f'{path} does not fit')
    assert 'missing 15 (first: backbone.stages.2.blocks.2.attn.' in \
        info.value.summary
    assert '\n' not in info.value.summary


def test_filter_keeps_own_layout_and_one_mapping():
    """Our classifier's state dict passes the filter unchanged; the same
    mapping without ``classifier`` drops the norm and head."""
    model = timm.create_model(
        'regionvit_tiny_224', num_classes=4, det_norm=True)
    own = model.state_dict()
    out = filter_pretrained(own, model)
    assert out.keys() == own.keys()
    assert all(out[k] is own[k] for k in own)
    official = load_fixture('tiny3conv_w7')['state_dict']
    kept = checkpoint_filter_fn(official, classifier=True)
    dropped = checkpoint_filter_fn(official)
    assert set(kept) - set(dropped) == {
        'norm.weight', 'norm.bias', 'head.weight', 'head.bias'
    }


def test_docs_top1_table_matches():
    readme = (Path(__file__).resolve().parents[1] / 'docs' /
              'timm.md').read_text()
    rows = re.findall(
        r'^\| `(regionvit_\w+)` \| `(RegionViT-\w+\.pth)`(, converted)? \| '
        r'([\d.]+|-) \|$', readme, re.M)
    assert [r[0] for r in rows] == [model_name(n) for n in VARIANTS]
    for (name, weights, converted,
         top1), variant in zip(rows, VARIANTS.values()):
        assert weights == variant.weights
        assert bool(converted) == (variant.window != variant.train_window)
        assert top1 == ('-' if variant.top1 is None else str(variant.top1))
