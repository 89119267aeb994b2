"""Files that are not what a user said they are: each stops with one line
that names the file and what is wrong, and never advises
``weights_only=False``."""
import argparse
import pickle
from pathlib import Path

import pytest
import torch
from conftest import load_fixture, official_arch
from tool_helpers import DEMO_DET, load_tool

from mmregionvit.models import RegionViT
from mmregionvit.models.checkpoint import read_state_dict
from mmregionvit.utils.checkpoint_safety import (CheckpointFileError,
                                                 load_checkpoint_file)


class Pickled:
    """Not weights: a weights-only load refuses it."""


def _text(path: Path) -> None:
    path.write_text('these are my notes, not weights\n')


def _truncated(path: Path) -> None:
    torch.save({'model': {'w': torch.zeros(64, 64)}}, path)
    path.write_bytes(path.read_bytes()[:2000])


def _empty(path: Path) -> None:
    path.write_bytes(b'')


def _list(path: Path) -> None:
    torch.save([torch.zeros(2)], path)


def _no_tensors(path: Path) -> None:
    torch.save({'model': {'w': [1.0, 2.0]}}, path)


def _object(path: Path) -> None:
    with open(path, 'wb') as f:
        pickle.dump({'model': Pickled()}, f)


# how a bad file is made -> what the one line says about it
BAD_CHECKPOINTS = {
    'text': (_text, 'not written by torch.save'),
    'truncated': (_truncated, 'truncated or damaged'),
    'empty': (_empty, 'the file is empty'),
    'list': (_list, 'it holds a list, not a dict of weights'),
    'no-tensors': (_no_tensors, "'w' is a list, not a tensor"),
    'object': (_object, 'not written by torch.save'),
}


def torch_saved_object(path: Path) -> None:
    torch.save({'model': Pickled()}, path)


def _bad_file(tmp_path: Path, name: str) -> tuple:
    make, reason = BAD_CHECKPOINTS[name]
    path = tmp_path / 'weights.pth'
    make(path)
    return path, reason


@pytest.fixture(params=sorted(BAD_CHECKPOINTS))
def bad_checkpoint(request, tmp_path):
    return _bad_file(tmp_path, request.param)


@pytest.fixture(params=['text', 'truncated', 'list', 'no-tensors'])
def bad_checkpoint_for_tools(request, tmp_path):
    """The cases a user meets most, for the tools (slower to start)."""
    return _bad_file(tmp_path, request.param)


def assert_one_line(message: str, path: Path, reason: str) -> None:
    assert message.count('\n') == 0, message
    assert str(path) in message and reason in message, message
    assert 'weights_only' not in message and 'Traceback' not in message


def test_loader_names_the_file_and_the_problem(tmp_path):
    for name, (make, reason) in BAD_CHECKPOINTS.items():
        path = tmp_path / f'{name}.pth'
        make(path)
        with pytest.raises(CheckpointFileError) as e:
            read_state_dict(str(path))
        assert_one_line(str(e.value), path, reason)
        assert e.value.__cause__ is None  # torch's advice is not chained


def test_loader_names_objects_a_weights_only_load_refuses(tmp_path):
    path = tmp_path / 'model.pth'
    torch_saved_object(path)
    with pytest.raises(CheckpointFileError) as e:
        load_checkpoint_file(str(path))
    assert_one_line(
        str(e.value), path,
        f'it holds pickled {__name__}.Pickled objects, not only weights')
    assert 'state_dict()' in str(e.value)


def test_official_training_checkpoints_load_with_their_arguments(tmp_path):
    """The official training script saves its argparse arguments beside
    the weights; a weights-only load takes them."""
    path = tmp_path / 'official.pth'
    torch.save(
        {
            'model': {
                'w': torch.ones(2)
            },
            'args': argparse.Namespace(model='regionvit_small_224', lr=1e-3)
        }, path)
    loaded = load_checkpoint_file(str(path))
    assert loaded['args'].model == 'regionvit_small_224'
    assert torch.equal(read_state_dict(str(path))['w'], torch.ones(2))


def test_mmap_check_reads_torch_files_of_both_formats(tmp_path):
    weights = {'w': torch.arange(4.0)}
    for zipped in (True, False):
        path = tmp_path / f'{zipped}.pth'
        torch.save(weights, path, _use_new_zipfile_serialization=zipped)
        loaded = load_checkpoint_file(str(path), mmap=True)
        assert torch.equal(loaded['w'], weights['w'])


def test_pretrained_init_cfg(bad_checkpoint):
    path, reason = bad_checkpoint
    fixture = load_fixture('tiny3conv_w7')
    model = RegionViT(
        arch=official_arch(fixture),
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointFileError) as e:
        model.init_weights()
    assert_one_line(str(e.value), path, reason)


def test_convert_official(bad_checkpoint_for_tools, tmp_path, capsys):
    path, reason = bad_checkpoint_for_tools
    out = tmp_path / 'out.pth'
    assert load_tool('convert_official').main([str(path), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ')
    assert_one_line(err, path, reason)
    assert not out.exists()


def test_test_tool(bad_checkpoint_for_tools, capsys):
    pytest.importorskip('mmdet')
    path, reason = bad_checkpoint_for_tools
    assert load_tool('test').main([DEMO_DET, str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ')
    assert_one_line(err, path, reason)


@pytest.fixture
def weights(tmp_path) -> str:
    """A file that loads as a checkpoint (the tools check that before
    building anything)."""
    path = tmp_path / 'weights.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}}, path)
    return str(path)


def test_infer_tool_on_a_non_image_file(tmp_path, weights, capsys):
    pytest.importorskip('mmdet')
    notes = tmp_path / 'notes.jpg'
    notes.write_text('not an image')
    out = tmp_path / 'out'
    infer = load_tool('infer')
    assert infer.main([DEMO_DET, weights,
                       str(notes), '--out-dir',
                       str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and str(notes) in err, err
    assert 'cannot be read as an image' in err
    # in a folder, only image files count, and each must decode
    folder = tmp_path / 'folder'
    folder.mkdir()
    (folder / 'README.txt').write_text('skipped: not an image suffix')
    assert infer.main([DEMO_DET, weights, str(folder)]) == 2
    assert 'holds no image files' in capsys.readouterr().err
    notes.rename(folder / 'broken.png')
    assert infer.main([DEMO_DET, weights, str(folder)]) == 2
    err = capsys.readouterr().err
    assert str(folder / 'broken.png') in err and 'README' not in err
    assert not out.exists()


def test_infer_tool_on_a_bad_checkpoint(bad_checkpoint_for_tools, capsys):
    pytest.importorskip('mmdet')
    path, reason = bad_checkpoint_for_tools
    image = Path(DEMO_DET)  # never reached
    assert load_tool('infer').main([DEMO_DET, str(path), str(image)]) == 2
    assert_one_line(capsys.readouterr().err.strip(), path, reason)
