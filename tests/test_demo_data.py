"""The synthetic shapes dataset generator (mmregionvit.datasets.shapes) and
tools/make_demo_data.py."""
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from tool_helpers import load_tool, run_script

from mmregionvit.datasets import shapes

ARGS = dict(seed=3, num_train=6, num_val=3, size=96)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('demo') / 'shapes'
    shapes.generate(str(out), **ARGS)
    return out


@pytest.mark.parametrize('split', ['train', 'val'])
def test_instances(dataset: Path, split: str) -> None:
    coco = COCO(str(dataset / 'annotations' / f'instances_{split}.json'))
    assert len(coco.getImgIds()) == ARGS[f'num_{split}']
    assert {c['name']
            for c in coco.loadCats(coco.getCatIds())
            } == {'circle', 'triangle', 'rectangle'}
    if split == 'train':
        used = {a['category_id'] for a in coco.dataset['annotations']}
        assert used == {1, 2, 3}
    for img in coco.loadImgs(coco.getImgIds()):
        pixels = cv2.imread(str(dataset / split / img['file_name']))
        assert pixels.shape == (img['height'], img['width'], 3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img['id']))
        assert 1 <= len(anns) <= 6
        for ann in anns:
            assert ann['iscrowd'] == 0 and ann['area'] >= 40
            assert ann['segmentation'] and all(
                len(p) >= 6 for p in ann['segmentation'])
            rle = mask_utils.merge(
                mask_utils.frPyObjects(ann['segmentation'], img['height'],
                                       img['width']))
            # contours run through pixel centres: a shape loses up to about
            # half a pixel along its outline
            outline = sum(
                cv2.arcLength(np.float32(p).reshape(-1, 1, 2), True)
                for p in ann['segmentation'])
            diff = abs(int(mask_utils.area(rle)) - ann['area'])
            assert diff <= 0.05 * ann['area'] + 0.5 * outline + 4
            x, y, w, h = ann['bbox']
            assert x >= 0 and y >= 0 and w > 0 and h > 0
            assert x + w <= img['width'] and y + h <= img['height']


@pytest.mark.parametrize('split', ['train', 'val'])
def test_semantic_maps(dataset: Path, split: str) -> None:
    coco = COCO(str(dataset / 'annotations' / f'instances_{split}.json'))
    for img in coco.loadImgs(coco.getImgIds()):
        labels = cv2.imread(
            str(dataset / 'ann_dir' / split / img['file_name']),
            cv2.IMREAD_UNCHANGED)
        assert labels.dtype == np.uint8 and labels.shape == (img['height'],
                                                             img['width'])
        assert set(np.unique(labels).tolist()) <= {0, 1, 2, 3}
        # every annotated instance's pixels carry its class
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img['id'])):
            area = np.count_nonzero(labels == ann['category_id'])
            assert area >= ann['area']


@pytest.mark.parametrize('split', ['train', 'val'])
def test_keypoints(dataset: Path, split: str) -> None:
    coco = COCO(str(dataset / 'annotations' / f'keypoints_{split}.json'))
    (cat, ) = coco.loadCats(coco.getCatIds())
    assert cat['keypoints'] == ['top', 'right', 'bottom', 'left']
    assert coco.dataset['annotations']
    size = ARGS['size']
    for ann in coco.dataset['annotations']:
        kpts = np.array(ann['keypoints']).reshape(-1, 3)
        assert kpts.shape == (4, 3) and ann['num_keypoints'] == 4
        assert set(kpts[:, 2].tolist()) <= {1, 2}
        x, y, w, h = ann['bbox']
        assert 0 <= x and 0 <= y and x + w <= size and y + h <= size
        top, right, bottom, left = kpts[:, :2]
        assert top[1] <= min(right[1], left[1]) and bottom[1] >= max(
            right[1], left[1])
        assert left[0] <= min(top[0], bottom[0]) and right[0] >= max(
            top[0], bottom[0])


def test_meta(dataset: Path) -> None:
    meta = json.loads((dataset / 'meta.json').read_text())
    assert meta['classes'] == ['circle', 'triangle', 'rectangle']
    assert meta['keypoint_names'] == ['top', 'right', 'bottom', 'left']
    assert meta['flip_pairs'] == [[1, 3]]
    assert len(meta['sigmas']) == 4


def test_reuse_and_refuse(tmp_path: Path) -> None:
    out = tmp_path / 'shapes'
    args = dict(ARGS, num_train=2, num_val=1)
    shapes.generate(str(out), **args)
    meta_file = out / 'meta.json'
    mtime = meta_file.stat().st_mtime_ns
    shapes.generate(str(out), **args)
    assert meta_file.stat().st_mtime_ns == mtime
    with pytest.raises(FileExistsError, match='--force'):
        shapes.generate(str(out), **dict(args, seed=args['seed'] + 1))
    shapes.generate(str(out), **dict(args, seed=args['seed'] + 1), force=True)
    assert json.loads(
        meta_file.read_text())['params']['seed'] == args['seed'] + 1
    assert [p.name
            for p in tmp_path.iterdir()] == ['shapes']  # no leftover temp dirs


def test_deterministic(tmp_path: Path, dataset: Path) -> None:
    out = tmp_path / 'again'
    shapes.generate(str(out), **ARGS)
    for name in os.listdir(dataset / 'annotations'):
        assert (out / 'annotations' /
                name).read_bytes() == (dataset / 'annotations' /
                                       name).read_bytes()
    assert (out / 'train' /
            '000000.png').read_bytes() == (dataset / 'train' /
                                           '000000.png').read_bytes()


@pytest.mark.slow
def test_tool_end_to_end(tmp_path: Path) -> None:
    """tools/make_demo_data.py writes the dataset, reports its counts, and
    refuses other parameters for an existing folder in one line."""
    out = tmp_path / 'shapes'
    args = ['--out', str(out), '--seed', '2', '--num-val', '1', '--size', '64']
    proc = run_script('make_demo_data', *args, '--num-train', '2')
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['params']['num_train'] == 2 and meta['params']['size'] == 64
    assert f'train: 2 images, {meta["counts"]["train"]["instances"]} ' \
        'instances' in proc.stdout
    assert f'{out} ready in' in proc.stdout
    with pytest.raises(SystemExit) as exc:
        load_tool('make_demo_data').main([*args, '--num-train', '3'])
    message = str(exc.value.code)
    assert message.startswith('error: ') and '--force' in message
    assert '\n' not in message
    assert len(list((out / 'train').iterdir())) == 2
