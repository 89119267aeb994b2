"""Bad samples: training skips and lists them, stops when there are too
many, evaluation stops on a bad image unless told to leave it out, and
tools/check_data.py finds them all."""
import io
import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from tool_helpers import DEMO_DET, as_cli, data_options, load_tool, tiny_shapes

from mmregionvit.datasets import bad_samples
from mmregionvit.datasets.bad_samples import (BadSampleError, SkipBadSamples,
                                              annotation_problem,
                                              annotation_problems,
                                              image_problem, read_list)
from mmregionvit.engine import bad_sample_hook
from mmregionvit.engine.bad_sample_hook import BadSampleHook

LOAD = [dict(type='LoadImageFromFile')]

# ------------------------------------------------------------ the checks


def _png(path: Path, size: int = 16) -> Path:
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), rng.integers(0, 255, (size, size, 3), np.uint8))
    return path


def test_image_problems(tmp_path):
    good = _png(tmp_path / 'good.png', 64)
    assert image_problem(str(good)) is None
    cut = tmp_path / 'cut.png'
    cut.write_bytes(good.read_bytes()[:300])
    assert image_problem(str(cut)) == \
        'cannot be decoded as an image (300 bytes)'
    text = tmp_path / 'notes.jpg'
    text.write_text('not an image')
    assert image_problem(str(text)).startswith('cannot be decoded')
    (tmp_path / 'empty.png').write_bytes(b'')
    assert image_problem(str(tmp_path / 'empty.png')) == 'empty file'
    assert image_problem(str(tmp_path / 'gone.png')) == 'file does not exist'
    # OpenCV cannot decode an icon, Pillow can: some pipeline reads it
    icon = io.BytesIO()
    Image.new('RGB', (8, 8), (1, 2, 3)).save(icon, 'ICO')
    (tmp_path / 'icon.ico').write_bytes(icon.getvalue())
    assert cv2.imread(str(tmp_path / 'icon.ico')) is None
    assert image_problem(str(tmp_path / 'icon.ico')) is None


IMAGE = dict(id=1, file_name='a.png', width=20, height=10)


def _ann(**kw) -> dict:
    ann = dict(
        id=5,
        image_id=1,
        category_id=1,
        bbox=[1, 1, 5, 5],
        segmentation=[[1, 1, 6, 1, 6, 6]])
    ann.update(kw)
    return ann


@pytest.mark.parametrize(
    'change, reason',
    [
        (dict(), None),
        (dict(segmentation=[[1, 1, 6, 1]]),
         'polygon with 2 point(s), fewer than 3'),
        (dict(segmentation=[[1, 1, 6, 1, 6, 6], [1, 1, 6, 1, 6]]),
         'polygon with 2 point(s), fewer than 3'),
        (dict(category_id=99), 'category id 99 is not in "categories"'),
        # right of, left of the image, no width
        (dict(bbox=[25, 2, 5, 5]), 'box [25, 2, 5, 5] has no area in the '
         'image'),
        (dict(bbox=[-4, 2, 4, 5]), 'box [-4, 2, 4, 5] has no area in the '
         'image'),
        (dict(bbox=[3, 3, 0, 5]), 'box [3, 3, 0, 5] has no area in the '
         'image'),
        (dict(bbox=[15, 2, 10, 5]), None),  # partly inside
        (dict(segmentation=[[21, 1, 30, 1, 30, 8]]), 'mask outside the image'),
        (dict(segmentation=[[1, -9, 6, -9, 6, -1]]), 'mask outside the image'),
        (dict(segmentation=dict(size=[5, 5], counts='x')),
         'mask of size [5, 5] on an image of [10, 20]'),
        (dict(segmentation=dict(size=[10, 20], counts='x')), None),
    ])
def test_annotation_problems(change, reason):
    got = annotation_problem(_ann(**change), IMAGE, {1, 2})
    assert got == (reason and f'annotation 5: {reason}')


def test_annotation_problems_name_the_image(tmp_path):
    coco = dict(
        images=[IMAGE, dict(IMAGE, id=2, file_name='b.png')],
        categories=[dict(id=1, name='x')],
        annotations=[
            _ann(),
            _ann(id=6, image_id=2, category_id=3),
            _ann(id=7, image_id=9, category_id=3),  # no such image
        ])
    assert annotation_problems(coco, '/data/img') == {
        '/data/img/b.png': 'annotation 6: category id 3 is not in '
        '"categories"'
    }


# ------------------------------------------------------ skipping in a run


@pytest.fixture
def warnings(monkeypatch) -> list:
    said = []
    monkeypatch.setattr(bad_samples, 'print_log',
                        lambda msg, **kw: said.append(msg))
    return said


def _results(path: Path) -> dict:
    return dict(img_path=str(path))


def test_training_pipeline_skips_lists_and_warns_once(tmp_path, warnings):
    good = _png(tmp_path / 'good.png')
    cut = tmp_path / 'cut.png'
    cut.write_bytes(good.read_bytes()[:100])
    records = tmp_path / 'records'
    guard = SkipBadSamples(LOAD, record_dir=str(records))
    assert guard(_results(good))['img'].shape == (16, 16, 3)
    assert guard(_results(cut)) is None
    assert guard(_results(cut)) is None
    assert read_list(str(records / 'rank0-main.txt')) == {
        str(cut): 'cannot be decoded as an image (100 bytes)'
    }
    assert len(warnings) == 1 and str(cut) in warnings[0]
    assert '\n' not in warnings[0]
    # another process of the run (here: a new one) does not warn again
    assert SkipBadSamples(LOAD, record_dir=str(records))(_results(cut)) is None
    assert len(warnings) == 1


def test_unusable_annotations_skip_their_image(tmp_path, warnings):
    good = _png(tmp_path / 'a.png')
    coco = dict(
        images=[dict(IMAGE, file_name='a.png')],
        categories=[dict(id=1, name='x')],
        annotations=[_ann(segmentation=[[1, 1, 6, 1]])])
    ann = tmp_path / 'ann.json'
    ann.write_text(json.dumps(coco))
    guard = SkipBadSamples(LOAD, ann_file=str(ann), img_dir=str(tmp_path))
    assert guard(_results(good)) is None
    assert 'fewer than 3' in warnings[0] and str(good) in warnings[0]


def test_a_failing_pipeline_on_good_files_is_not_skipped(tmp_path):

    def broken(results):
        raise KeyError('a bug, not a bad file')

    guard = SkipBadSamples([*LOAD, broken])
    with pytest.raises(KeyError, match='a bug'):
        guard(_results(_png(tmp_path / 'good.png')))


def test_many_bad_samples_in_a_row_stop(tmp_path, warnings):
    good = _png(tmp_path / 'good.png')
    (tmp_path / 'x.png').write_text('x')
    guard = SkipBadSamples(LOAD, max_in_a_row=3)
    bad = _results(tmp_path / 'x.png')
    for results in (bad, bad, _results(good), bad, bad):
        guard(dict(results))  # a good sample starts the count again
    with pytest.raises(BadSampleError) as e:
        guard(dict(bad))
    message = str(e.value)
    assert message.startswith('3 train samples in a row are bad')
    assert 'check data_root' in message and '\n' not in message


def test_evaluation_pipeline_stops_with_one_line(tmp_path):
    (tmp_path / 'x.png').write_text('x')
    guard = SkipBadSamples(LOAD, skip=False, split='val', on_stop='fix it')
    with pytest.raises(BadSampleError) as e:
        guard(_results(tmp_path / 'x.png'))
    assert str(e.value) == (f'val image {tmp_path / "x.png"}: cannot be '
                            'decoded as an image (1 bytes); fix it.')


class _Dataset(torch.utils.data.Dataset):

    def __len__(self):
        return 1

    def __getitem__(self, idx):
        raise BadSampleError('what went wrong: here')


def test_the_error_of_a_dataloader_worker_is_one_line():
    loader = torch.utils.data.DataLoader(_Dataset(), num_workers=1)
    with pytest.raises(BadSampleError) as e:
        next(iter(loader))
    assert 'Traceback' in e.value.args[0]  # as the worker sent it
    assert str(e.value) == 'what went wrong: here'


def _runner(work: Path, rank: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        work_dir=str(work),
        rank=rank,
        train_dataloader=SimpleNamespace(dataset=list(range(8))))


def test_the_cap_counts_the_bad_samples_of_every_rank(tmp_path, monkeypatch):
    records = tmp_path / 'bad_samples_by_process'
    records.mkdir()
    (records / 'rank0-worker0.txt').write_text('a.png\tbad\nb.png\tbad\n')
    others = {'c.png': 'bad', 'd.png': 'bad'}  # what rank 1 skipped
    sent = []  # what rank 1 sends when the ranks exchange
    monkeypatch.setattr(bad_sample_hook, 'all_gather_object',
                        lambda mine: [mine, *sent])
    hook = BadSampleHook(max_share=0.3)  # 2.4 of 8
    hook.before_train(_runner(tmp_path))  # 2 of 8 on this rank: under it
    sent.append(others)
    with pytest.raises(BadSampleError) as e:
        hook.after_train_iter(_runner(tmp_path), 0)
    list_file = tmp_path / 'bad_samples.txt'
    assert str(e.value) == (
        '4 of 8 training samples are bad, more than the 30.0% allowed '
        f'(bad_samples.max_share); the list is in {list_file}.')
    assert read_list(str(list_file)) == dict(
        others, **{
            'a.png': 'bad',
            'b.png': 'bad'
        })
