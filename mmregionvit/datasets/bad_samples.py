"""Samples that cannot be used: what makes one bad, and skipping it.

A sample is bad when its image (or label map) cannot be decoded, or when
its COCO annotations cannot be used as written: a polygon with fewer than 3
points, a box with no area inside the image, a category id that the file's
``categories`` lack, a mask outside the image. ``SkipBadSamples`` wraps a
dataset's pipeline: in training it returns ``None`` for a bad sample, so
that mmengine's ``BaseDataset`` draws another one (up to its
``max_refetch``), and each process lists what it skipped in a file of its
own; in evaluation it stops with one line instead.
"""
import hashlib
import io
import json
import logging
import os
import os.path as osp
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform, Compose
from mmengine.dist import get_rank
from mmengine.logging import print_log
from PIL import Image
from torch.utils.data import get_worker_info

from ..registry import TRANSFORMS

# The file of the merged list, in the work dir, and the folder of the
# per-process lists it is merged from.
LIST_NAME = 'bad_samples.txt'
RECORD_DIR = 'bad_samples_by_process'
# In RECORD_DIR: one empty file per skipped file that has been warned of.
WARNED_DIR = 'warned'
# The result keys of the files a pipeline reads.
FILE_KEYS = ('img_path', 'seg_map_path')
FIX = 'replace the file or remove it from the annotations'
EVAL_FLAG = '--skip-bad-eval-images'
EVAL_FIX = f'{FIX}, or pass {EVAL_FLAG} to leave it out of the metric'


class BadSampleError(RuntimeError):
    """A bad sample where none may be skipped, or too many bad samples.

    Raised in a dataloader worker, it reaches the main process with the
    worker's traceback in its message; ``str()`` gives the one line.
    """

    def __str__(self) -> str:
        text = super().__str__().rstrip()
        if '\n' not in text:
            return text
        return text.splitlines()[-1].split(': ', 1)[-1]


def image_problem(path: str) -> Optional[str]:
    """Why the image file at ``path`` cannot be used, or None.

    Bad is a file that neither OpenCV (mmcv's default decoder) nor Pillow
    (the detection configs') decodes: either one is enough for some
    pipeline. Pillow reads to the end of the file, so one cut short fails
    both.
    """
    if not osp.isfile(path):
        return 'file does not exist'
    with open(path, 'rb') as f:
        data = f.read()
    if not data:
        return 'empty file'
    if cv2.imdecode(np.frombuffer(data, np.uint8),
                    cv2.IMREAD_UNCHANGED) is not None:
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except Exception:  # Pillow raises many kinds here
        return f'cannot be decoded as an image ({len(data)} bytes)'
    return None


def _polygon_problem(segm, width: float, height: float) -> Optional[str]:
    """Why a COCO ``segmentation`` cannot be used as a mask, or None."""
    if isinstance(segm, dict):  # RLE
        size = list(segm.get('size', []))
        if size != [height, width]:
            return (f'mask of size {size} on an image of '
                    f'{[height, width]}')
        return None
    for poly in segm:
        if len(poly) < 6 or len(poly) % 2:
            return f'polygon with {len(poly) // 2} point(s), fewer than 3'
    points = np.array([p for poly in segm for p in poly],
                      dtype=float).reshape(-1, 2)
    if len(points) and (points[:, 0].max() <= 0 or points[:, 1].max() <= 0
                        or points[:, 0].min() >= width
                        or points[:, 1].min() >= height):
        return 'mask outside the image'
    return None


def annotation_problem(ann: dict, image: dict,
                       category_ids: set) -> Optional[str]:
    """Why one COCO annotation of ``image`` cannot be used, or None."""
    ann_id = ann.get('id', '?')
    if ann.get('category_id') not in category_ids:
        return (f'annotation {ann_id}: category id '
                f'{ann.get("category_id")} is not in "categories"')
    width, height = image.get('width'), image.get('height')
    bbox = ann.get('bbox')
    if bbox is not None and width is not None and height is not None:
        x, y, w, h = bbox
        inside_w = min(x + w, width) - max(x, 0)
        inside_h = min(y + h, height) - max(y, 0)
        if inside_w <= 0 or inside_h <= 0:
            return f'annotation {ann_id}: box {bbox} has no area in the image'
    segm = ann.get('segmentation')
    if segm and width is not None and height is not None:
        problem = _polygon_problem(segm, width, height)
        if problem:
            return f'annotation {ann_id}: {problem}'
    return None


def annotation_problems(coco: dict, img_dir: str) -> Dict[str, str]:
    """``{image path: reason}`` of the images of a COCO dict with an
    annotation that cannot be used (the first such one)."""
    category_ids = {c.get('id') for c in coco.get('categories', [])}
    images = {img.get('id'): img for img in coco.get('images', [])}
    problems = {}
    for ann in coco.get('annotations', []):
        image = images.get(ann.get('image_id'))
        if image is None:
            continue  # never loaded: not a sample
        path = osp.normpath(osp.join(img_dir, image['file_name']))
        if path in problems:
            continue
        problem = annotation_problem(ann, image, category_ids)
        if problem:
            problems[path] = problem
    return problems


def load_coco(ann_file: str) -> dict:
    with open(ann_file) as f:
        return json.load(f)


# ------------------------------------------------------------ the lists


def record_path(record_dir: str, rank: int, worker: Optional[int]) -> str:
    """The list of one process: a rank's main process or one of its
    dataloader workers."""
    name = 'main' if worker is None else f'worker{worker}'
    return osp.join(record_dir, f'rank{rank}-{name}.txt')


def read_list(path: str) -> Dict[str, str]:
    """``{file: reason}`` of a list of ``file<TAB>reason`` lines."""
    entries = {}
    if osp.isfile(path):
        with open(path) as f:
            for line in f:
                file, _, reason = line.rstrip('\n').partition('\t')
                if file:
                    entries.setdefault(file, reason)
    return entries


def rank_lists(record_dir: str, rank: int) -> List[str]:
    """The per-process lists of one rank."""
    if not osp.isdir(record_dir):
        return []
    return sorted(
        osp.join(record_dir, n) for n in os.listdir(record_dir)
        if n.startswith(f'rank{rank}-') and n.endswith('.txt'))


def read_records(record_dir: str, rank: int) -> Dict[str, str]:
    """What the processes of ``rank`` have skipped."""
    entries = {}
    for path in rank_lists(record_dir, rank):
        for file, reason in read_list(path).items():
            entries.setdefault(file, reason)
    return entries


def write_list(path: str, entries: Dict[str, str]) -> None:
    """Write ``file<TAB>reason`` lines, sorted, replacing ``path`` whole."""
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        for file in sorted(entries):
            f.write(f'{file}\t{entries[file]}\n')
    os.replace(tmp, path)


class _Recorder:
    """Lists the samples one process skips, each once."""

    def __init__(self, record_dir: str) -> None:
        self.record_dir = record_dir
        self.rank = get_rank()  # built in the main process of a rank
        self.listed: Dict[str, set] = {}  # own list -> files in it

    def add(self, path: str, reason: str) -> bool:
        """Note a skip; True the first time any process of the run skips
        ``path``."""
        info = get_worker_info()
        own = record_path(self.record_dir, self.rank,
                          None if info is None else info.id)
        if own not in self.listed:  # also a worker started anew each epoch
            self.listed[own] = set(read_list(own))
        if path in self.listed[own]:
            return False
        self.listed[own].add(path)
        os.makedirs(self.record_dir, exist_ok=True)
        with open(own, 'a') as f:
            f.write(f'{path}\t{reason}\n')
        return self._claim(path)

    def _claim(self, path: str) -> bool:
        """True in the one process that claims ``path`` first: creating a
        file exclusively succeeds once, also between processes."""
        folder = osp.join(self.record_dir, WARNED_DIR)
        os.makedirs(folder, exist_ok=True)
        name = hashlib.sha1(path.encode()).hexdigest()
        try:
            os.close(
                os.open(
                    osp.join(folder, name),
                    os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True


def _bad_file(paths: Sequence[Optional[str]]) -> Tuple[Optional[str], str]:
    for path in paths:
        if path:
            problem = image_problem(path)
            if problem:
                return path, problem
    return None, ''


@TRANSFORMS.register_module()
class SkipBadSamples(BaseTransform):
    """Run a pipeline; for a bad sample, return ``None`` (training) or
    stop with one line (evaluation).

    The tools wrap every dataset's pipeline in it
    (``mmregionvit.utils.data_checks.guard_datasets``). A failing pipeline
    whose files all decode re-raises its own error: only bad files are
    skipped, never a bug.

    Args:
        transforms: The pipeline.
        record_dir: Where each process lists what it skipped (training).
        ann_file: A COCO file whose unusable annotations make their images
            bad (checked once, here).
        img_dir: The folder ``ann_file``'s ``file_name`` are relative to.
        skip: Skip bad samples (training) or stop (evaluation).
        max_in_a_row: Stop when this many samples in a row are bad: the
            data is likely not where the config says.
        split: The split's name, for messages.
        list_file: The merged list named in messages.
        on_stop: What the one line of a stop advises.
    """

    def __init__(self,
                 transforms: List[dict],
                 record_dir: Optional[str] = None,
                 ann_file: Optional[str] = None,
                 img_dir: str = '',
                 skip: bool = True,
                 max_in_a_row: int = 20,
                 split: str = 'train',
                 list_file: str = LIST_NAME,
                 on_stop: str = FIX) -> None:
        self.pipeline = Compose(transforms)
        self.problems = annotation_problems(load_coco(ann_file),
                                            img_dir) if ann_file else {}
        self.recorder = _Recorder(record_dir) if record_dir else None
        self.skip = skip
        self.max_in_a_row = max_in_a_row
        self.in_a_row = 0
        self.split = split
        self.list_file = list_file
        self.on_stop = on_stop

    def transform(self, results: dict) -> Optional[dict]:
        paths = [results.get(k) for k in FILE_KEYS]
        reason = self.problems.get(osp.normpath(
            paths[0])) if paths[0] else None
        if reason is not None:
            return self._bad(paths[0], reason)
        try:
            out = self.pipeline(results)
        except Exception:
            path, reason = _bad_file(paths)
            if path is None:
                raise
            return self._bad(path, reason)
        if out is not None:
            self.in_a_row = 0
        return out

    def _bad(self, path: str, reason: str) -> None:
        if not self.skip:
            raise BadSampleError(f'{self.split} image {path}: {reason}; '
                                 f'{self.on_stop}.')
        if self.recorder is None or self.recorder.add(path, reason):
            print_log(
                f'skipping bad {self.split} sample {path}: {reason} '
                f'(listed in {self.list_file})',
                logger='current',
                level=logging.WARNING)
        self.in_a_row += 1
        if self.in_a_row >= self.max_in_a_row:
            raise BadSampleError(
                f'{self.in_a_row} {self.split} samples in a row are bad '
                f'(the last: {path}: {reason}); check data_root and '
                f'data_prefix. The list is in {self.list_file}.')
        return None

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(skip={self.skip}, '
                f'pipeline={self.pipeline!r})')


def iter_leaves(dataset) -> Iterator:
    """Built leaf datasets under Repeat/Concat/ClassBalanced wrappers."""
    if hasattr(dataset, 'datasets'):
        for sub in dataset.datasets:
            yield from iter_leaves(sub)
    elif hasattr(dataset, 'dataset'):
        yield from iter_leaves(dataset.dataset)
    else:
        yield dataset
