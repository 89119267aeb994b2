"""Bad samples: training skips and lists them, stops when there are too
many, evaluation stops on a bad image unless told to leave it out, and
tools/check_data.py finds them all."""
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from test_distributed import NO_VAL, launch
from tool_helpers import (DEMO_DET, ROOT, as_cli, data_options, load_tool,
                          tiny_shapes)

from mmregionvit.datasets import bad_samples
from mmregionvit.datasets.bad_samples import (BadSampleError, SkipBadSamples,
                                              annotation_problem,
                                              annotation_problems,
                                              image_problem, read_list)
from mmregionvit.engine import bad_sample_hook
from mmregionvit.engine.bad_sample_hook import BadSampleHook
from mmregionvit.utils import preflight

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


def test_training_pipeline_skips_lists_and_warns_once(tmp_path, warnings,
                                                      monkeypatch):
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
    # a dataloader worker of the run lists it too, but does not warn again
    monkeypatch.setattr(bad_samples, 'get_worker_info',
                        lambda: SimpleNamespace(id=1))
    assert SkipBadSamples(LOAD, record_dir=str(records))(_results(cut)) is None
    assert read_list(str(records / 'rank0-worker1.txt')).keys() == {str(cut)}
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


# ------------------------------------------------- the demo data, broken


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:300])


def _edit_annotation(data: Path, image_id: int, **change) -> None:
    ann = data / 'annotations' / 'instances_train.json'
    coco = json.loads(ann.read_text())
    next(a for a in coco['annotations']
         if a['image_id'] == image_id).update(change)
    ann.write_text(json.dumps(coco))


def broken_shapes(root: Path, bad_val: bool = True) -> tuple:
    """The tiny demo data with four bad training samples (of 8) and one
    bad validation image (of 4) if ``bad_val``; returns the data and
    ``{file: reason}`` of the training ones."""
    data = Path(tiny_shapes(root))
    train = data / 'train'
    _truncate(train / '000003.png')  # mid-dataset
    (train / '000005.png').write_text('my notes, not an image')
    _edit_annotation(data, 2, segmentation=[[10.0, 10.0, 20.0, 20.0]])
    _edit_annotation(data, 7, category_id=99)
    if bad_val:
        _truncate(data / 'val' / '000002.png')
    bad = {
        train / '000003.png': 'cannot be decoded as an image (300 bytes)',
        train / '000005.png': 'cannot be decoded as an image (22 bytes)',
        train / '000001.png': 'polygon with 2 point(s), fewer than 3',
        train / '000006.png': 'category id 99 is not in "categories"',
    }
    return data, {str(k): v for k, v in bad.items()}


def assert_lists_exactly(list_file: Path, bad: dict) -> None:
    listed = read_list(str(list_file))
    assert listed.keys() == bad.keys()
    for file, reason in bad.items():
        assert listed[file].endswith(reason), (file, listed[file])


def test_check_data_tool_reports_every_bad_file(tmp_path, capsys):
    data, bad = broken_shapes(tmp_path / 'shapes')
    check = load_tool('check_data')
    args = [
        DEMO_DET, '--nproc', '2', '--cfg-options',
        *as_cli(data_options(str(data)))
    ]
    assert check.main(args) == 1
    out = capsys.readouterr().out
    assert 'train: 8 files, 2 cannot be decoded, 2 with unusable ' \
        'annotations' in out
    assert 'val: 4 files, 1 cannot be decoded, 0 with unusable ' \
        'annotations' in out
    listed = out[out.index('bad files (5):'):].splitlines()[1:]
    val = str(data / 'val' / '000002.png')
    expected = dict(bad, **{val: 'cannot be decoded as an image (300 bytes)'})
    assert len(listed) == 5
    for line in listed:
        file, reason = line.split('\t')
        assert reason.endswith(expected.pop(file))
    clean = tiny_shapes(tmp_path / 'clean')
    assert check.main(
        [DEMO_DET, '--cfg-options', *as_cli(data_options(clean))]) == 0
    assert 'bad files' not in capsys.readouterr().out


# ------------------------------------------------------------ training

train_tool = load_tool('train')
test_tool = load_tool('test')


def small(data: Path, **extra) -> dict:
    """The demo detector on ``data`` at 64x64, two dataloader workers that
    live through the run, batches of 4 (two iterations see every training
    image: the sampler goes through a whole permutation first)."""
    options = data_options(str(data))
    options.update({
        'train_dataloader.num_workers': 2,
        'train_dataloader.persistent_workers': True,
        'train_dataloader.batch_size': 4,
        'train_dataloader.dataset.pipeline.2.scale': (64, 64),
        'val_dataloader.dataset.pipeline.1.scale': (64, 64),
        'test_dataloader.dataset.pipeline.1.scale': (64, 64),
    })
    options.update(extra)
    return options


def run_train(data: Path, work: Path, iters: int, *flags: str,
              options=()) -> int:
    """tools/train.py with ``flags``, and config ``options`` last."""
    return train_tool.main([
        DEMO_DET, '--work-dir',
        str(work), *flags, '--cfg-options', *as_cli(small(data)),
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
        *options
    ])


def log_text(work: Path) -> str:
    return '\n'.join(p.read_text() for p in sorted(work.glob('*/*.log')))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Two iterations on the broken data (half of it bad: a cap of 60%),
    validated with the bad val image left out; then resumed to 3, without
    validation."""
    tmp = tmp_path_factory.mktemp('bad')
    data, bad = broken_shapes(tmp / 'shapes')
    work = tmp / 'work'
    flags = ['--max-bad-share', '0.6', '--skip-bad-eval-images']
    first = run_train(data, work, 2, *flags)
    first_list = read_list(str(work / 'bad_samples.txt'))
    first_log = log_text(work)
    resumed = run_train(data, work, 3, '--resume', *flags[:2], options=NO_VAL)
    return SimpleNamespace(
        data=data,
        bad=bad,
        work=work,
        codes=(first, resumed),
        first_list=first_list,
        first_log=first_log)


@pytest.mark.slow
def test_training_skips_bad_samples_lists_them_and_resumes(trained):
    assert trained.codes == (0, 0)
    work = trained.work
    # the last iteration, then again after resuming
    assert torch.load(work / 'iter_2.pth')['meta']['iter'] == 2
    assert torch.load(work / 'iter_3.pth')['meta']['iter'] == 3
    assert trained.first_list.keys() == trained.bad.keys()
    # the config the run saved serves inference as written
    from mmengine.config import Config
    saved = Config.fromfile(work / Path(DEMO_DET).name)
    assert saved.test_dataloader.dataset.pipeline[0].type == \
        'LoadImageFromFile'
    assert_lists_exactly(work / 'bad_samples.txt', trained.bad)
    # one warning per file, the first time, naming it and why
    for file, reason in trained.bad.items():
        said = [
            line for line in trained.first_log.splitlines()
            if f'skipping bad train sample {file}:' in line
        ]
        assert len(said) == 1 and reason in said[0], said


@pytest.mark.slow
def test_validation_leaves_out_a_bad_image_on_request(trained):
    log = trained.first_log
    val_image = trained.data / 'val' / '000002.png'
    assert '1 val image(s) that cannot be decoded were left out of this ' \
        'evaluation' in log
    metrics = [line for line in log.splitlines() if 'Iter(val)' in line]
    assert metrics and 'skipped_bad_images: 1' in metrics[-1]
    assert 'coco/bbox_mAP' in metrics[-1]
    assert read_list(str(trained.work / 'bad_val_images.txt')).keys() == \
        {str(val_image)}
    kept = json.loads((trained.work / 'val0_without_bad.json').read_text())
    assert [i['file_name'] for i in kept['images']
            ] == ['000000.png', '000001.png', '000003.png']


@pytest.mark.slow
def test_too_many_bad_samples_stop_training(tmp_path, capsys):
    data, bad = broken_shapes(tmp_path / 'shapes', bad_val=False)
    work = tmp_path / 'work'
    assert run_train(data, work, 2) == 1  # the default cap: 1%
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    list_file = work / 'bad_samples.txt'
    assert re.fullmatch(
        r'error: [1-8] of 8 training samples are bad, more than the 1\.0% '
        rf'allowed \(bad_samples\.max_share\); the list is in '
        rf'{re.escape(str(list_file))}\.', err), err
    listed = read_list(str(list_file))
    assert listed and listed.keys() <= bad.keys()
    assert not (work / 'iter_2.pth').exists()


@pytest.mark.slow
def test_a_bad_test_image_stops_evaluation_unless_left_out(
        trained, tmp_path, capsys, monkeypatch):
    checkpoint = str(trained.work / 'iter_3.pth')
    image = trained.data / 'val' / '000002.png'

    def evaluate(work: str, *flags: str) -> int:
        options = small(
            trained.data, **{
                'test_dataloader.num_workers': 1,
                'model.test_cfg.rcnn.score_thr': 0.0
            })
        return test_tool.main([
            DEMO_DET, checkpoint, '--work-dir',
            str(tmp_path / work), *flags, '--cfg-options', *as_cli(options)
        ])

    def one_line() -> str:
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        return err

    # a set this small is decoded whole before any work
    assert evaluate('before') == 2
    err = one_line()
    assert str(image) in err and '--skip-bad-eval-images' in err
    # a larger one, of which the pre-flight check decodes a sample that
    # misses it, stops when a dataloader worker reaches it
    monkeypatch.setattr(preflight, '_DECODE_SAMPLE', 1)
    assert evaluate('during') == 1
    assert one_line() == (
        f'error: test image {image}: cannot be decoded as an image (300 '
        'bytes); replace the file or remove it from the annotations, or pass'
        ' --skip-bad-eval-images to leave it out of the metric.')
    # left out on request, and said with the metrics
    assert evaluate('left_out', '--skip-bad-eval-images') == 0
    log = log_text(tmp_path / 'left_out')
    metrics = [line for line in log.splitlines() if 'Iter(test)' in line]
    assert 'coco/bbox_mAP' in metrics[-1]
    assert 'skipped_bad_images: 1' in metrics[-1]
    kept = json.loads(
        (tmp_path / 'left_out' / 'test0_without_bad.json').read_text())
    assert [i['file_name'] for i in kept['images']
            ] == ['000000.png', '000001.png', '000003.png']


@pytest.mark.parametrize('config', [
    'configs/segmentation/upernet_regionvit_demo_shapes.py',
    'configs/keypoint/td-hm_regionvit_demo_shapes.py'
])
def test_segmentation_and_pose_datasets_skip_bad_files(config, tmp_path,
                                                       warnings):
    """The tools guard every dataset: a bad image (or label map) of a
    segmentation or top-down pose dataset is replaced by another sample."""
    from mmengine.registry import DATASETS, init_default_scope

    from mmregionvit.utils.config import load_config
    from mmregionvit.utils.data_checks import guard_datasets
    data = Path(tiny_shapes(tmp_path / 'shapes'))
    _truncate(data / 'train' / '000003.png')
    bad = {str(data / 'train' / '000003.png')}
    if 'segmentation' in config:
        label_map = data / 'ann_dir' / 'train' / '000005.png'
        label_map.write_text('not a label map')
        bad.add(str(label_map))
    cfg = load_config(
        str(ROOT / config), {'train_dataloader.dataset.data_root': f'{data}/'},
        work_dir=str(tmp_path / 'work'))
    guard_datasets(cfg, True)
    init_default_scope(cfg.default_scope)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    for i in range(len(dataset)):
        assert dataset[i]['inputs'].shape[0] == 3
    records = tmp_path / 'work' / 'bad_samples_by_process' / 'rank0-main.txt'
    assert read_list(str(records)).keys() == bad


@pytest.mark.slow
def test_two_processes_list_their_own_skips_and_merge_them(tmp_path):
    """tools/dist_train.sh, two processes with a dataloader worker each:
    the sampler in file order gives process 0 images 0, 2, 4, 6 and
    process 1 images 1, 3, 5, 7, so each meets bad files of its own."""
    data, bad = broken_shapes(tmp_path / 'shapes', bad_val=False)
    work = tmp_path / 'work'
    options = data_options(str(data))
    options.update({
        'train_dataloader.num_workers': 1,
        'train_dataloader.persistent_workers': True,
        'train_dataloader.sampler.shuffle': False,
        'train_dataloader.dataset.pipeline.2.scale': (64, 64),
    })
    launch([
        'tools/dist_train.sh', DEMO_DET, '2', '--work-dir',
        str(work), '--max-bad-share', '0.6', '--cfg-options', *as_cli(options),
        'train_cfg.max_iters=2', *NO_VAL
    ], tmp_path / 'two.log')
    assert_lists_exactly(work / 'bad_samples.txt', bad)
    records = work / 'bad_samples_by_process'
    rank0 = read_list(str(records / 'rank0-worker0.txt'))
    rank1 = read_list(str(records / 'rank1-worker0.txt'))
    train = data / 'train'
    assert str(train / '000006.png') in rank0
    assert {str(train / f'00000{i}.png') for i in (1, 3, 5)} <= rank1.keys()
    assert sorted(p.name for p in records.glob('*.txt')) == [
        'rank0-worker0.txt', 'rank1-worker0.txt'
    ]


def test_a_folder_evaluation_set_leaves_out_bad_images(tmp_path):
    """Segmentation images in a folder: the others are listed as mmseg's
    ``ann_file``."""
    from mmengine.registry import DATASETS, init_default_scope

    from mmregionvit.utils.config import load_config
    from mmregionvit.utils.data_checks import leave_out_bad_images
    data = Path(tiny_shapes(tmp_path / 'shapes'))
    _truncate(data / 'val' / '000002.png')
    work = tmp_path / 'work'
    cfg = load_config(
        str(ROOT / 'configs/segmentation/upernet_regionvit_demo_shapes.py'),
        {'val_dataloader.dataset.data_root': f'{data}/'},
        work_dir=str(work))
    assert leave_out_bad_images(
        cfg, 'val', nproc=1) == (1, str(work / 'bad_val_images.txt'))
    init_default_scope(cfg.default_scope)
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    assert [
        Path(dataset.get_data_info(i)['img_path']).name
        for i in range(len(dataset))
    ] == ['000000.png', '000001.png', '000003.png']


@pytest.mark.parametrize('resume', [False, True])
def test_a_new_run_forgets_the_lists_of_an_earlier_one(tmp_path, resume):
    """Before any dataloader worker starts, a new run in the work dir
    removes what its rank listed before; a resumed run keeps it."""
    from mmregionvit.utils.config import load_config
    from mmregionvit.utils.data_checks import guard_datasets
    work = tmp_path / 'work'
    records = work / 'bad_samples_by_process'
    (records / 'warned').mkdir(parents=True)
    earlier = [
        records / 'rank0-worker0.txt', records / 'rank0-main.txt',
        records / 'warned' / 'abc', work / 'bad_samples.txt'
    ]
    for path in [*earlier, records / 'rank1-worker0.txt']:
        path.write_text('x.png\tbad\n')
    cfg = load_config(DEMO_DET, work_dir=str(work))
    cfg.resume = resume
    guard_datasets(cfg, True)
    assert [p.exists() for p in earlier] == [resume] * 4
    assert (records / 'rank1-worker0.txt').exists()  # another rank's
    assert cfg.custom_hooks[-1].type == 'mmregionvit.BadSampleHook'
    assert cfg.train_dataloader.dataset.pipeline[0].type == \
        'mmregionvit.SkipBadSamples'


def test_a_coco_evaluation_set_and_its_metric_leave_out_bad_images(tmp_path):
    """The dataset and the COCO metric read a copy of the annotations
    without the bad image: the metric is that of the others."""
    from mmregionvit.utils.config import load_config
    from mmregionvit.utils.data_checks import leave_out_bad_images
    data, _ = broken_shapes(tmp_path / 'shapes')
    work = tmp_path / 'work'
    cfg = load_config(DEMO_DET, data_options(str(data)), str(work))
    assert leave_out_bad_images(
        cfg, 'test', nproc=1) == (1, str(work / 'bad_test_images.txt'))
    kept = str(work / 'test0_without_bad.json')
    assert cfg.test_dataloader.dataset.ann_file == kept
    assert cfg.test_evaluator.ann_file == kept
    coco = json.loads(Path(kept).read_text())
    original = json.loads(
        (data / 'annotations' / 'instances_val.json').read_text())
    assert [i['id'] for i in coco['images']] == [1, 2, 4]
    assert coco['annotations'] == [
        a for a in original['annotations'] if a['image_id'] != 3
    ]
    assert coco['categories'] == original['categories']


@pytest.mark.parametrize('option, message', [
    (['--max-bad-share', '1.5'], 'bad_samples.max_share=1.5 must be a share'),
    (['--cfg-options', 'bad_samples.max_share_=0.1'
      ], "bad_samples has unknown key(s) ['max_share_']"),
])
def test_bad_sample_settings_out_of_range_are_one_line(tmp_path, capsys,
                                                       option, message):
    data = tiny_shapes(tmp_path / 'shapes')
    work = tmp_path / 'work'
    args = [DEMO_DET, '--work-dir', str(work)]
    options = [*as_cli(data_options(data)), 'train_cfg.max_iters=1', *NO_VAL]
    if option[0] == '--cfg-options':
        args += [*option, *options]
    else:
        args += [*option, '--cfg-options', *options]
    assert train_tool.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not work.exists()
