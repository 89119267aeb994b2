"""The backbone reproduces the official RegionViT outputs."""
import pytest
import torch
from conftest import GOLDEN, load_fixture, official_arch
from tolerances import check_close

from mmregionvit.registry import MODELS


def build_from_checkpoint(kwargs: dict, path: str):
    model = MODELS.build(
        dict(
            type='mmregionvit.RegionViT',
            arch=kwargs,
            init_cfg=dict(type='Pretrained', checkpoint=path)))
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('fused', [True, False], ids=['fused', 'reference'])
@pytest.mark.parametrize('name', GOLDEN)
def test_official_outputs(name, fused, tmp_path):
    """Both paths, in inference and with autograd recording (the fused
    path's training kernels), give the official outputs."""
    fixture = load_fixture(name)
    path = str(tmp_path / 'release.pth')
    torch.save({'model': fixture['state_dict']}, path)  # release file layout
    model = build_from_checkpoint(official_arch(fixture), path)
    model.fused = fused
    for case in fixture['cases']:
        for grad in (False, True):
            with torch.set_grad_enabled(grad):
                outs = model(case['input'])
            assert len(outs) == 4
            for i, (out, ref) in enumerate(
                    zip(outs, case['stage_outputs'], strict=True)):
                check_close(
                    'official', out, ref,
                    f'{name} {tuple(case["input"].shape)}'
                    f' stage {i}, grad {grad}')


@pytest.mark.parametrize('layout', ['detectron2', 'plain', 'mmengine'])
def test_checkpoint_layouts(layout, tmp_path):
    fixture = load_fixture('tiny3conv_w7')
    sd = fixture['state_dict']
    if layout == 'detectron2':
        ckpt = {
            'model': {
                f'backbone.bottom_up.model.{k}': v
                for k, v in sd.items() if not k.startswith(('head.', 'norm.'))
            }
        }
    elif layout == 'plain':
        ckpt = sd
    else:
        # an mmengine checkpoint of our own model, saved under 'state_dict'
        first = tmp_path / 'first.pth'
        torch.save(sd, first)
        model = build_from_checkpoint(official_arch(fixture), str(first))
        ckpt = {
            'state_dict': {
                f'backbone.{k}': v
                for k, v in model.state_dict().items()
            },
            'meta': {
                'epoch': 1
            }
        }
    path = tmp_path / f'{layout}.pth'
    torch.save(ckpt, path)
    model = build_from_checkpoint(official_arch(fixture), str(path))
    case = fixture['cases'][2]
    with torch.no_grad():
        outs = model(case['input'])
    for out, ref in zip(outs, case['stage_outputs'], strict=True):
        check_close('official', out, ref, layout)
