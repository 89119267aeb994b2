"""Config loading for the tools: ``mmregionvit::`` bases that mmengine
cannot find, and the input size each task is measured and exported at."""
import pytest
from mmengine.config import config as mmengine_config
from tool_helpers import DEMO_DET, ROOT, load_tool

from mmregionvit.benchmark.runner import check_args
from mmregionvit.utils.config import load_config

BASE = 'detection/maskrcnn_regionvit_demo_shapes.py'


def installed_at(monkeypatch, folder) -> None:
    """mmengine finds the mmregionvit package in ``folder``."""
    find = mmengine_config.get_installed_path
    monkeypatch.setattr(
        mmengine_config, 'get_installed_path', lambda package: str(folder)
        if package == 'mmregionvit' else find(package))


def inheriting(tmp_path, base: str) -> str:
    path = tmp_path / 'mine.py'
    path.write_text(f'_base_ = {base!r}\n')
    return str(path)


def test_package_base_without_installed_configs(tmp_path, monkeypatch):
    """Where mmengine looks for ``mmregionvit::`` configs in a package
    folder without them (an editable install), one line says to inherit by
    file path and names the file; doing so loads the config."""
    site = tmp_path / 'site-packages' / 'mmregionvit'
    installed_at(monkeypatch, site)
    mine = inheriting(tmp_path, f'mmregionvit::{BASE}')
    with pytest.raises(FileNotFoundError) as e:
        load_config(mine)
    message = str(e.value)
    assert '\n' not in message
    assert message.startswith(f"{mine} inherits an 'mmregionvit::' config")
    assert 'pip install .' in message and str(site) in message
    suggested = message.split('_base_ = ')[1].strip("'")
    assert suggested == str(ROOT / 'configs' / BASE)
    cfg = load_config(inheriting(tmp_path, suggested))
    assert cfg.model.backbone.type == 'mmregionvit.RegionViT'


def test_package_base_with_installed_configs(tmp_path, monkeypatch):
    """Where the package folder has the configs (``mmregionvit/.mim``),
    ``mmregionvit::`` bases load, and other missing files keep their own
    error."""
    installed_at(monkeypatch, ROOT / 'mmregionvit')
    cfg = load_config(inheriting(tmp_path, f'mmregionvit::{BASE}'))
    assert cfg.model.backbone.type == 'mmregionvit.RegionViT'
    with pytest.raises(FileNotFoundError) as e:
        load_config(inheriting(tmp_path, './nope.py'))
    assert 'nope.py' in str(e.value) and 'inherits' not in str(e.value)


@pytest.mark.parametrize(
    'library, config, size',
    [
        # the official FIXED size, the ADE20K crop, the COCO keypoint crop
        ('mmdet', 'detection/maskrcnn_regionvit_s_coco.py', (672, 1120)),
        ('mmseg', 'segmentation/upernet_regionvit_s_ade20k.py', (512, 512)),
        ('mmpose', 'keypoint/td-hm_regionvit_s_coco-256x192.py', (256, 192)),
    ])
def test_tools_measure_a_task_at_one_size(library, config, size, monkeypatch):
    """benchmark.py model, get_flops.py and export_onnx.py take the same
    input size for a config's task when none is given."""
    pytest.importorskip(library)
    config = str(ROOT / 'configs' / config)
    args = load_tool('benchmark').build_parser().parse_args(['model', config])
    check_args(args)
    assert tuple(args.input_size) == size

    got = {}

    def record(name):

        def stop(*args):
            got[name] = tuple(args[-1])  # the shape, the last argument
            raise KeyboardInterrupt

        return stop

    get_flops = load_tool('get_flops')
    monkeypatch.setattr(get_flops, 'complexity', record('get_flops'))
    export = load_tool('export_onnx')
    monkeypatch.setattr(export, 'build_model', lambda cfg, checkpoint: None)
    monkeypatch.setattr(export.onnx_export, 'model_graph',
                        lambda model, task: None)
    monkeypatch.setattr(export.onnx_export, 'random_images',
                        record('export_onnx'))
    with pytest.raises(KeyboardInterrupt):
        get_flops.main([config])
    with pytest.raises(KeyboardInterrupt):
        export.main(['model', config, '--out', 'unused.onnx'])
    assert got == {'get_flops': size, 'export_onnx': size}


def test_benchmark_backbone_and_explicit_sizes():
    parser = load_tool('benchmark').build_parser()
    for argv, size in ((['backbone'], (672, 1120)),
                       (['model', DEMO_DET, '--input-size', '96',
                         '128'], (96, 128))):
        args = parser.parse_args(argv)
        check_args(args)
        assert tuple(args.input_size) == size
