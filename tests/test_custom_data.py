"""Training on one's own data (docs/custom_data.md): the commands as
written, on the demo data, from a converted official COCO detector; and
the one-line errors for data that does not fit the config."""
import json
import logging
import re
from pathlib import Path

import pytest
import torch

pytest.importorskip('mmdet')
from conftest import load_fixture
from detection_helpers import fixture_widths, mini_detector_cfg
from mmengine.config import Config
from mmengine.runner import Runner
from tool_helpers import ROOT, load_tool, tiny_shapes

CUSTOM = {
    kind: ROOT / f'configs/detection/{kind}_regionvit_s_custom-coco-format.py'
    for kind in ('maskrcnn', 'retinanet')
}
# the class-specific predictors, in the configs' NewClassesHook
PREDICTORS = {
    'maskrcnn': ('roi_head.bbox_head.fc_cls', 'roi_head.bbox_head.fc_reg',
                 'roi_head.mask_head.conv_logits'),
    'retinanet': ('bbox_head.retina_cls', ),
}


def my_data_config(folder: Path, kind: str, data: str, load_from: str) -> Path:
    """Step 2: the custom config copied and its top lines set (with its
    ``_base_`` pointing back into the repository, as beside the others)."""
    text = CUSTOM[kind].read_text()
    text = text.replace("_base_ = './", f"_base_ = '{CUSTOM[kind].parent}/")
    text = re.sub(r"^data_root = .*$", f'data_root = {data + "/"!r}', text, 1,
                  re.M)
    text = re.sub(r"^load_from = .*$", f'load_from = {load_from!r}', text, 1,
                  re.M)
    path = folder / f'{kind}_regionvit_s_my-data.py'
    path.write_text(text)
    return path


def fixture_size(folder: Path, kind: str, config: Path, fixture: dict) -> Path:
    """``config`` at the reduced widths of the fixture's detector, and its
    fixed resize to 160x96 instead of 672x1120, for the test only."""
    cfg = Config.fromfile(config)
    small = (160, 96)
    cfg.merge_from_dict({
        'model': fixture_widths(kind, fixture),
        'train_dataloader.dataset.pipeline.2.scale': small,
        'val_dataloader.dataset.pipeline.1.scale': small,
        'test_dataloader.dataset.pipeline.1.scale': small,
    })
    assert cfg.test_dataloader.dataset.pipeline[1].type.endswith(
        'FixedOrientedResize')
    path = folder / f'{kind}_my-data_fixture-size.py'
    cfg.dump(str(path))
    return path


# small batches, in this process
LOADERS = [
    f'{split}_dataloader.{key}' for split in ('train', 'val', 'test')
    for key in ('num_workers=0', 'persistent_workers=False', 'batch_size=2')
]


def convert(folder: Path, kind: str) -> tuple:
    """Step 1 on the 80-class official detector fixture of ``kind``, and
    the demo data: (data root, converted checkpoint, config)."""
    fixture = load_fixture(f'd2_{kind}_shared80')
    official = folder / f'{kind}_1x_official.pth'
    torch.save(fixture['checkpoint'], official)
    coco80 = folder / f'{kind}_fixture-size_coco.py'
    mini_detector_cfg(kind, fixture).dump(str(coco80))
    checkpoint = folder / f'checkpoints/{kind}_regionvit_s_coco.pth'
    assert load_tool('convert_official').main(
        [str(official),
         str(checkpoint), '--config',
         str(coco80)]) == 0
    data = tiny_shapes(folder / 'data/shapes')
    config = my_data_config(folder, kind, data, str(checkpoint))
    return data, checkpoint, fixture_size(folder, kind, config, fixture)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """(folder, data root, converted checkpoint, config) of Mask R-CNN."""
    tmp = tmp_path_factory.mktemp('own')
    return (tmp, *convert(tmp, 'maskrcnn'))


@pytest.mark.parametrize('kind', sorted(CUSTOM))
def test_checkpoint_loads_all_but_the_80_class_predictors(
        kind, tmp_path, capsys):
    """Loaded for training, every tensor of the converted detector is in
    the 3-class model, key by key, except the class-specific predictors,
    which keep their initialisation."""
    _, checkpoint, config = convert(tmp_path, kind)
    cfg = Config.fromfile(config)
    cfg.work_dir = str(tmp_path / 'load')
    cfg.visualizer.name = f'{kind}_visualizer'  # one each in this process
    runner = Runner.from_cfg(cfg)
    runner.model.init_weights()
    initial = {k: v.clone() for k, v in runner.model.state_dict().items()}

    def load_logs() -> list:
        records = []
        handler = logging.Handler()
        handler.emit = lambda record: records.append(record.getMessage())
        runner.logger.addHandler(handler)
        try:
            runner.load_checkpoint(str(checkpoint))
        finally:
            runner.logger.removeHandler(handler)
        return records

    # not training (tools/test.py): a checkpoint must fit as it is, and
    # mmengine prints what does not
    capsys.readouterr()
    assert not any('made for other classes' in r for r in load_logs())
    assert 'size mismatch for' in capsys.readouterr().out
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    records = load_logs()
    assert 'do not match' not in capsys.readouterr().out
    loaded = runner.model.state_dict()
    source = torch.load(checkpoint, weights_only=True)['state_dict']
    assert set(source) == set(loaded)
    skipped = {k for k in source if k.startswith(PREDICTORS[kind])}
    assert skipped == {
        f'{p}.{t}'
        for p in PREDICTORS[kind]
        for t in ('weight', 'bias')
    }
    # one log line names them
    (line, ) = [r for r in records if 'made for other classes' in r]
    assert f'{len(skipped)} class-specific tensors not loaded' in line
    assert all(key in line for key in skipped)
    for key, value in source.items():
        if key in skipped:
            assert value.shape != loaded[key].shape, key
            assert torch.equal(loaded[key], initial[key]), key
        else:
            assert torch.equal(loaded[key], value), key


@pytest.mark.slow
def test_own_data_section_as_written(converted, tmp_path, monkeypatch, capsys):
    """Steps 3-5: train one epoch (4 iterations) and evaluate, test,
    infer. The log says in one line which tensors were not loaded, and
    has no size-mismatch report."""
    _, data, _, config = converted
    work = tmp_path / 'work'
    assert load_tool('train').main([
        str(config), '--work-dir',
        str(work), '--cfg-options', 'train_cfg.max_epochs=1', *LOADERS
    ]) == 0
    (log, ) = work.glob('*/*.log')
    text = log.read_text()
    lines = [
        line for line in text.splitlines()
        if 'checkpoint made for other classes' in line
    ]
    assert len(lines) == 1
    assert '6 class-specific tensors not loaded' in lines[0]
    for name in PREDICTORS['maskrcnn']:
        assert name in lines[0]
    # mmengine prints its report of what did not load
    assert 'do not match' not in capsys.readouterr().out
    assert 'coco/bbox_mAP' in text and 'coco/segm_mAP' in text
    checkpoint = work / 'epoch_1.pth'

    results = []
    runner_test = Runner.test
    monkeypatch.setattr(
        Runner, 'test',
        lambda r: results.append(runner_test(r)) or results[-1])
    assert load_tool('test').main([
        str(config),
        str(checkpoint), '--work-dir',
        str(tmp_path / 'test'), '--cfg-options', *LOADERS
    ]) == 0
    (metrics, ) = results
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert 0 <= metrics[key] <= 1

    image = sorted((Path(data) / 'val').glob('*.png'))[0]
    out = tmp_path / 'out'
    assert load_tool('infer').main(
        [str(config),
         str(checkpoint),
         str(image), '--out-dir',
         str(out)]) == 0
    assert (out / 'vis' / image.name).is_file()


def test_data_that_does_not_fit_stops_with_one_line(converted, tmp_path,
                                                    capsys):
    """A missing annotation file, classes that are not categories of it
    (named), an image that is not under the prefix (the first named)."""
    folder, data, checkpoint, _ = converted
    config = my_data_config(tmp_path, 'maskrcnn', data, str(checkpoint))
    train = load_tool('train')

    def error(*options) -> str:
        work = tmp_path / 'never'
        assert train.main(
            [str(config), '--work-dir',
             str(work), '--cfg-options', *options]) == 2
        assert not work.exists()
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    ann = f'{data}/annotations/instances_nope.json'
    assert error('train_dataloader.dataset.ann_file=annotations/'
                 'instances_nope.json') == (
                     f'error: train annotation file {ann} does not exist; '
                     'check data_root and ann_file.')
    line = error('train_dataloader.dataset.metainfo.classes='
                 '[circle,square,triangle,hexagon]')
    assert line.startswith("error: classes ['square', 'hexagon'] of "
                           'metainfo are not categories of ')
    assert "(it has ['circle', 'triangle', 'rectangle'])" in line
    train_json = Path(data) / 'annotations/instances_train.json'
    first = json.loads(train_json.read_text())['images'][0]['file_name']
    line = error('train_dataloader.dataset.data_prefix.img=elsewhere/')
    assert f'e.g. {data}/elsewhere/{first}.' in line
    assert 'Check data_root and data_prefix.' in line


def test_custom_configs_derive_their_classes(tmp_path):
    """The class count is set once, in the class list, for every head."""
    for name, heads in (
        ('detection/maskrcnn_regionvit_s_custom-coco-format.py',
         ('roi_head.bbox_head', 'roi_head.mask_head')),
        ('detection/retinanet_regionvit_s_custom-coco-format.py',
         ('bbox_head', )),
        ('segmentation/upernet_regionvit_s_custom-ade20k-format.py',
         ('decode_head', 'auxiliary_head')),
    ):
        text = (ROOT / 'configs' / name).read_text()
        text = re.sub(r'^classes = .*$', "classes = ('a', 'b')", text, 1, re.M)
        text = text.replace(
            "_base_ = './", f"_base_ = '{ROOT}/configs/"
            f"{name.split('/')[0]}/")
        path = tmp_path / Path(name).name
        path.write_text(text)
        cfg = Config.fromfile(path)
        for head in heads:
            sub = cfg.model
            for part in head.split('.'):
                sub = sub[part]
            assert sub.num_classes == 2, (name, head)
        assert cfg.train_dataloader.dataset.metainfo.classes == ('a', 'b')
