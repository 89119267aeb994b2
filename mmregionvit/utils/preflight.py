"""Checks run by the tools before any work, each failing with one message
that says what is wrong and how to fix it."""
import json
import os.path as osp
from typing import Iterator, List, Optional, Sequence, Tuple

import cv2
from mmengine.config import Config, ConfigDict

# How many images (evenly spread) are decoded to prove they can be read.
_DECODE_SAMPLE = 64


class PreflightError(ValueError):
    """A config or its data is not usable as given."""


def _consumer(model: ConfigDict) -> Optional[tuple]:
    """(name, cfg) of the module that takes the backbone's feature maps."""
    for key in ('neck', 'decode_head', 'head'):
        sub = model.get(key)
        if isinstance(sub, dict) and 'in_channels' in sub:
            return key, sub
        if isinstance(sub, dict):
            return None  # a neck without in_channels: nothing to compare
    return None


def check_channels(model: ConfigDict) -> None:
    """The backbone's output widths agree with what the next module takes."""
    backbone = model.get('backbone', {})
    if not str(backbone.get('type', '')).endswith('RegionViT'):
        return
    from ..models.variants import resolve_arch
    try:
        dims = resolve_arch(backbone.get('arch', 'small'))['embed_dim'][1:]
    except (KeyError, ValueError) as e:
        raise PreflightError(f'model.backbone.arch: {e}') from e
    indices = backbone.get('out_indices', (0, 1, 2, 3))
    given = [dims[i] for i in indices]
    consumer = _consumer(model)
    if consumer is None:
        return
    name, sub = consumer
    expected = sub['in_channels']
    fits = given == list(expected) if isinstance(expected, (list, tuple)) \
        else len(given) == 1 and given[0] == expected
    if not fits:
        want = given if isinstance(expected, (list, tuple)) else given[-1]
        raise PreflightError(
            f'model.{name}.in_channels={expected} does not match the '
            f'backbone: RegionViT arch {backbone.get("arch")!r} with '
            f'out_indices={tuple(indices)} gives {given}. Set '
            f'model.{name}.in_channels={want}.')


def leaf_datasets(cfg: ConfigDict) -> Iterator[ConfigDict]:
    """Leaf dataset configs, unwrapping Repeat/Concat/ClassBalanced."""
    if 'dataset' in cfg:
        yield from leaf_datasets(cfg['dataset'])
    elif 'datasets' in cfg:
        for sub in cfg['datasets']:
            yield from leaf_datasets(sub)
    else:
        yield cfg


def _join(root: str, path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def dataset_paths(ds: ConfigDict) -> Tuple[str, str]:
    """(annotation file or '', image folder) of a leaf dataset config, as
    the dataset joins them with its data_root."""
    root = ds.get('data_root') or ''
    prefix = ds.get('data_prefix') or {}
    img_dir = _join(root, prefix.get('img', prefix.get('img_path', '')))
    ann = ds.get('ann_file') or ''
    return (_join(root, ann) if ann else ''), img_dir


def _check_images(paths: Sequence[str], where: str, split: str,
                  decode: bool) -> None:
    """Every listed image exists; of a sample of them, decoded, not all
    fail (training skips single bad ones) and, for evaluation, none."""
    missing = [p for p in paths if not osp.isfile(p)]
    if missing:
        raise PreflightError(
            f'{len(missing)} image file(s) listed in {where} do not exist, '
            f'e.g. {missing[0]}. Check data_root and data_prefix.')
    step = max(1, len(paths) // _DECODE_SAMPLE)
    sample = paths[::step] if decode else []
    bad = [p for p in sample if cv2.imread(p, cv2.IMREAD_UNCHANGED) is None]
    if bad and split != 'train':
        raise PreflightError(
            f'image {bad[0]} (listed in {where}) cannot be read as an '
            'image; replace the file or remove it from the annotations, or '
            'pass --skip-bad-eval-images to leave it out of the metric.')
    if sample and len(bad) == len(sample):
        raise PreflightError(
            f'none of the {len(sample)} images decoded from {where} can be '
            f'read as an image, e.g. {bad[0]}. Check data_root and '
            'data_prefix (tools/check_data.py CONFIG checks every file).')


def _check_classes(ds: ConfigDict, coco: dict, path: str) -> None:
    """Every class of the dataset's ``metainfo`` is a category of the
    annotation file (the file may hold more)."""
    classes = (ds.get('metainfo') or {}).get('classes')
    if not classes:
        return
    names = [c.get('name') for c in coco['categories']]
    missing = [c for c in classes if c not in names]
    if missing:
        raise PreflightError(
            f'classes {missing} of metainfo are not categories of {path} '
            f'(it has {names}); set metainfo classes to names from its '
            '"categories".')


def check_dataset(ds: ConfigDict, split: str, decode: bool = True) -> None:
    """Paths exist, a COCO file is COCO, its classes are its categories, and
    its images can be read (``decode``: a sample of them is decoded)."""
    root = ds.get('data_root') or ''
    if root and not osp.isdir(root):
        raise PreflightError(
            f'{split} data_root {root!r} does not exist. Put the dataset '
            'there or set --cfg-options '
            f'{split}_dataloader.dataset.data_root=/path/to/data.')
    path, img_dir = dataset_paths(ds)
    if path and not path.endswith('.json'):
        return
    if not path:  # folder datasets (e.g. ADE20K): images are files on disk
        if img_dir and not osp.isdir(img_dir):
            raise PreflightError(f'{split} image folder {img_dir} does not '
                                 'exist; check data_root and data_prefix.')
        return
    if not osp.isfile(path):
        raise PreflightError(f'{split} annotation file {path} does not exist;'
                             ' check data_root and ann_file.')
    try:
        with open(path) as f:
            coco = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PreflightError(f'{path} is not a JSON file ({e}); it must be '
                             'a COCO-format annotation file.') from e
    required = ['images', 'categories']
    if not ds.get('test_mode', False):
        required.append('annotations')
    absent = [
        k for k in required
        if not isinstance(coco, dict) or not isinstance(coco.get(k), list)
    ]
    if absent:
        raise PreflightError(f'{path} is not a COCO annotation file: it has '
                             f'no {absent} list(s). Convert it to COCO format'
                             ' (images, annotations, categories).')
    _check_classes(ds, coco, path)
    names = [img.get('file_name') for img in coco['images']]
    if any(n is None for n in names):
        raise PreflightError(f'{path}: every entry of "images" needs a '
                             '"file_name".')
    _check_images([_join(img_dir, n) for n in names], path, split, decode)


def check_config(cfg: Config,
                 phases: List[str] = ('train', 'val'),
                 skip_bad_eval: bool = False) -> None:
    """All pre-flight checks for running ``phases`` of ``cfg``
    (``skip_bad_eval``: evaluation images are decoded later, all of them,
    and the bad ones left out)."""
    check_channels(cfg.model)
    for phase in phases:
        loader = cfg.get(f'{phase}_dataloader')
        if phase == 'val' and cfg.get('val_cfg') is None:
            continue
        if loader is None:
            raise PreflightError(f'the config has no {phase}_dataloader.')
        for ds in leaf_datasets(loader['dataset']):
            check_dataset(ds, phase, phase == 'train' or not skip_bad_eval)
