"""tools/convert_official.py on official-layout files."""
import shlex

import pytest
import torch
from conftest import load_fixture, official_arch, official_window_conversion
from tolerances import check_close
from tool_helpers import load_tool

from mmregionvit.models import RegionViT

convert_official = load_tool('convert_official')


def printed_commands(out: str) -> dict:
    """The command lines the converter suggests, by tool."""
    return {
        argv[1]: argv[2:]
        for argv in map(shlex.split, out.splitlines())
        if argv[:1] == ['python']
    }


def test_backbone_conversion_then_pretrained_load(tmp_path, capsys):
    fixture = load_fixture('tiny3conv_w7')
    src, dst = tmp_path / 'RegionViT.pth', tmp_path / 'out' / 'converted.pth'
    torch.save({'model': fixture['state_dict']}, src)
    assert convert_official.main([str(src), str(dst)]) == 0
    (command, ) = printed_commands(capsys.readouterr().out).values()
    train_args = load_tool('train').parse_args(command)
    assert train_args.cfg_options == {
        'model.backbone.init_cfg.checkpoint': str(dst)
    }
    saved = torch.load(dst, weights_only=True)
    assert saved['meta']['kind'] == 'backbone'
    assert not any(
        k.startswith(('head.', 'norm.')) for k in saved['state_dict'])
    model = RegionViT(
        arch=official_arch(fixture),
        init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    case = fixture['cases'][1]
    with torch.no_grad():
        outs = model.eval()(case['input'])
    for out, ref in zip(outs, case['stage_outputs'], strict=True):
        check_close('official', out, ref, 'converted backbone')


def test_window_size_conversion(tmp_path):
    fixture = load_fixture('tiny3conv_w7')
    src, dst = tmp_path / 'w7.pth', tmp_path / 'w14.pth'
    torch.save({'model': fixture['state_dict']}, src)
    assert convert_official.main([str(src),
                                  str(dst), '--window-size', '14']) == 0
    sd = torch.load(dst, weights_only=True)['state_dict']
    expected = official_window_conversion(fixture['state_dict'], 14)
    assert sd['regional_embed.weight'].shape[-2:] == (56, 56)
    torch.testing.assert_close(sd['regional_embed.weight'],
                               expected['cls_token.proj.weight'])
    assert sd['stages.3.blocks.0.attn.rel_pos'].shape == (8, 27 * 27)
    torch.testing.assert_close(sd['stages.3.blocks.0.attn.rel_pos'],
                               expected['layers.3.block.1.attn.rel_pos'])


@pytest.mark.slow
def test_detector_conversion_checked_against_config(tmp_path, capsys):
    pytest.importorskip('mmdet')
    from detection_helpers import build_detector, mini_detector_cfg
    fixture = load_fixture('d2_retinanet_shared')
    cfg_path = tmp_path / 'mini.py'
    mini_detector_cfg('retinanet', fixture).dump(str(cfg_path))
    src, dst = tmp_path / 'd2.pth', tmp_path / 'mm.pth'
    torch.save(fixture['checkpoint'], src)
    assert convert_official.main(
        [str(src), str(dst), '--config',
         str(cfg_path)]) == 0
    model = build_detector(mini_detector_cfg('retinanet', fixture))
    model.load_state_dict(torch.load(dst, weights_only=True)['state_dict'])
    # the printed next steps are command lines the tools accept
    commands = printed_commands(capsys.readouterr().out)
    test_args = load_tool('test').parse_args(commands['tools/test.py'])
    assert (test_args.config, test_args.checkpoint) == (str(cfg_path),
                                                        str(dst))
    train_args = load_tool('train').parse_args(commands['tools/train.py'])
    assert train_args.config == str(cfg_path)
    assert train_args.cfg_options == {'load_from': str(dst)}
    # a config that does not fit is refused, and nothing is written
    bad = mini_detector_cfg('retinanet', fixture)
    bad.model.bbox_head.num_classes = 80
    bad.dump(str(cfg_path))
    out = tmp_path / 'never.pth'
    assert convert_official.main(
        [str(src), str(out), '--config',
         str(cfg_path)]) == 2
    assert 'shape mismatch' in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob('*.part'))
