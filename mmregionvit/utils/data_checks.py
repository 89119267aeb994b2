"""Bad samples in a config's data: the tools' set-up for skipping them in
training, leaving them out of an evaluation on request, and checking every
file of a dataset (tools/check_data.py)."""
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional, Tuple

from mmengine.config import Config, ConfigDict
from mmengine.utils import track_parallel_progress, track_progress

from ..datasets.bad_samples import (LIST_NAME, RECORD_DIR, WARNED_DIR,
                                    annotation_problems, image_problem,
                                    load_coco, rank_lists, write_list)
from .dist import torch_env
from .preflight import dataset_paths, leaf_datasets

# bad_samples = dict(...) in a config; these are the defaults.
SETTINGS = dict(max_share=0.01, max_in_a_row=20)
_WRAPPER = 'mmregionvit.SkipBadSamples'
_HOOK = 'mmregionvit.BadSampleHook'


def settings(cfg: Config) -> dict:
    """The config's ``bad_samples`` over the defaults; unknown keys and a
    share out of range are an error."""
    given = dict(cfg.get('bad_samples') or {})
    unknown = sorted(set(given) - set(SETTINGS))
    if unknown:
        raise ValueError(f'bad_samples has unknown key(s) {unknown}; it '
                         f'takes {sorted(SETTINGS)}.')
    opts = dict(SETTINGS, **given)
    if not 0 <= opts['max_share'] < 1:
        raise ValueError(f'bad_samples.max_share={opts["max_share"]} must '
                         'be a share in [0, 1), e.g. 0.01 for 1%.')
    return opts


def _loaders(cfg: Config, phases) -> List[Tuple[str, ConfigDict]]:
    """(phase, dataloader config) of the phases the config runs."""
    out = []
    for phase in phases:
        loader = cfg.get(f'{phase}_dataloader')
        if loader is None or (phase == 'val' and cfg.get('val_cfg') is None):
            continue
        out.append((phase, loader))
    return out


def _wrap(ds: ConfigDict, **kwargs) -> None:
    """Wrap a leaf dataset's pipeline in ``SkipBadSamples`` (once)."""
    pipeline = ds.get('pipeline') or []
    if pipeline and pipeline[0].get('type') == _WRAPPER:
        return
    ds.pipeline = [dict(type=_WRAPPER, transforms=list(pipeline), **kwargs)]


def _rank(cfg: Config) -> int:
    """This process's rank, before any process group exists."""
    if cfg.get('launcher', 'none') == 'none':
        return 0
    return int(torch_env(cfg.launcher)['RANK'])


def _forget_earlier_run(cfg: Config) -> None:
    """Remove this rank's lists of skipped samples (and, on rank 0, the
    merged list and the marks of what was warned of) of an earlier run in
    the work dir, before any dataloader worker starts; a resumed run keeps
    them."""
    if cfg.get('resume'):
        return
    work_dir = osp.abspath(cfg.work_dir)
    record_dir = osp.join(work_dir, RECORD_DIR)
    rank = _rank(cfg)
    for path in rank_lists(record_dir, rank):
        os.remove(path)
    if rank == 0:
        shutil.rmtree(osp.join(record_dir, WARNED_DIR), ignore_errors=True)
        if osp.isfile(osp.join(work_dir, LIST_NAME)):
            os.remove(osp.join(work_dir, LIST_NAME))


def guard_datasets(cfg: Config,
                   train: bool,
                   eval_skipped: Optional[dict] = None) -> None:
    """Make the run skip bad training samples (listed in
    ``WORK_DIR/bad_samples.txt``, capped by ``bad_samples.max_share``) and
    stop with one line on a bad evaluation image.

    Only the training pipelines are wrapped in the config (their dataloader
    workers start before any hook); ``BadSampleHook`` wraps the evaluation
    datasets' pipelines when they are built, so the config the run saves
    still serves the inference APIs. ``eval_skipped``: ``{phase: (count,
    list file)}`` of the images ``leave_out_bad_images`` took out, said
    with the metrics. Call it after ``cfg.resume`` is set: a new run
    forgets an earlier run's lists.
    """
    opts = settings(cfg)
    work_dir = osp.abspath(cfg.work_dir)
    if train:
        _forget_earlier_run(cfg)
        for ds in leaf_datasets(cfg.train_dataloader.dataset):
            ann, img_dir = dataset_paths(ds)
            _wrap(
                ds,
                record_dir=osp.join(work_dir, RECORD_DIR),
                ann_file=ann if ann.endswith('.json') else None,
                img_dir=img_dir,
                max_in_a_row=opts['max_in_a_row'],
                list_file=osp.join(work_dir, LIST_NAME))
    hooks = cfg.get('custom_hooks') or []
    if not any(h.get('type') == _HOOK for h in hooks):
        hooks.append(
            dict(
                type=_HOOK,
                max_share=opts['max_share'],
                eval_skipped=eval_skipped or {}))
    cfg.custom_hooks = hooks


# ------------------------------------------------------------ every file


def _folder_files(ds: ConfigDict, img_dir: str) -> List[Tuple[str, ...]]:
    """(image, label map or None) of a folder dataset (mmseg's layout)."""
    prefix = ds.get('data_prefix') or {}
    root = ds.get('data_root') or ''
    seg_dir = prefix.get('seg_map_path')
    seg_dir = osp.join(root, seg_dir) if seg_dir else None
    suffix = ds.get('img_suffix', '.jpg')
    seg_suffix = ds.get('seg_map_suffix', '.png')
    files = []
    for folder, _, names in sorted(os.walk(img_dir)):
        for name in sorted(names):
            if not name.endswith(suffix):
                continue
            rel = osp.relpath(osp.join(folder, name), img_dir)
            seg = osp.join(seg_dir, rel[:-len(suffix)] +
                           seg_suffix) if seg_dir else None
            files.append((osp.join(img_dir, rel), seg))
    return files


def dataset_files(ds: ConfigDict) -> Tuple[List[str], Dict[str, str]]:
    """Every file a leaf dataset reads, and ``{image: reason}`` of those
    with unusable annotations."""
    ann, img_dir = dataset_paths(ds)
    where = ann if ann.endswith('.json') else img_dir
    if not osp.exists(where):
        raise FileNotFoundError(f'{where} does not exist; check data_root, '
                                'ann_file and data_prefix.')
    if ann.endswith('.json'):
        coco = load_coco(ann)
        files = [
            osp.normpath(osp.join(img_dir, img['file_name']))
            for img in coco.get('images', [])
        ]
        return files, annotation_problems(coco, img_dir)
    if ann:
        raise ValueError(f'{ann}: only COCO (.json) annotation files and '
                         'image folders can be checked.')
    pairs = _folder_files(ds, img_dir)
    return [f for pair in pairs for f in pair if f], {}


def _decode_all(files: List[str], nproc: int) -> Dict[str, str]:
    """``{file: reason}`` of the files that cannot be decoded, with a
    progress bar."""
    if not files:
        return {}
    if nproc > 1 and len(files) > 1:
        reasons = track_parallel_progress(
            image_problem, files, nproc, chunksize=8)
    else:
        reasons = track_progress(image_problem, files)
    return {f: r for f, r in zip(files, reasons) if r}


def find_bad(cfg: Config,
             phases=('train', 'val', 'test'),
             nproc: Optional[int] = None) -> Dict[str, dict]:
    """``{phase: {'files': n, 'undecodable': {file: reason},
    'annotations': {image: reason}}}``: every file of the phases' datasets
    decoded (on ``nproc`` processes, default all cores), every annotation
    checked."""
    nproc = nproc or os.cpu_count() or 1
    report = {}
    seen = {}  # a dataset shared by two phases is read once
    for phase, loader in _loaders(cfg, phases):
        r = dict(files=0, undecodable={}, annotations={})
        for ds in leaf_datasets(loader.dataset):
            key = dataset_paths(ds)
            if key not in seen:
                files, problems = dataset_files(ds)
                print(f'{phase}: decoding {len(files)} files')
                seen[key] = len(files), _decode_all(files, nproc), problems
            count, undecodable, problems = seen[key]
            r['files'] += count
            r['undecodable'].update(undecodable)
            r['annotations'].update(problems)
        report[phase] = r
    return report


def summary(report: Dict[str, dict]) -> List[str]:
    """The lines tools/check_data.py prints: a count per phase, then each
    bad file and why."""
    lines, bad = [], {}
    for phase, r in report.items():
        lines.append(f'{phase}: {r["files"]} files, {len(r["undecodable"])} '
                     f'cannot be decoded, {len(r["annotations"])} with '
                     'unusable annotations')
        bad.update(r['annotations'])
        bad.update(r['undecodable'])
    if bad:
        lines.append(f'bad files ({len(bad)}):')
        lines += [f'{f}\t{bad[f]}' for f in sorted(bad)]
    return lines


# -------------------------------------------- leaving out bad eval images


def _same_file(a: str, b: str) -> bool:
    return osp.normpath(osp.abspath(a)) == osp.normpath(osp.abspath(b))


def _retarget_evaluator(cfg: Config, phase: str, old: str, new: str) -> None:
    """Point the phase's metrics that read ``old`` at ``new``."""
    evaluator = cfg.get(f'{phase}_evaluator')
    metrics = evaluator if isinstance(evaluator, list) else [evaluator]
    for metric in metrics:
        if isinstance(metric, dict) and metric.get('ann_file') and \
                _same_file(metric['ann_file'], old):
            metric.ann_file = new


def _write_without(ds: ConfigDict, bad: Dict[str, str], out: str) -> str:
    """Write the dataset's annotation list without ``bad``; returns the
    file to use."""
    ann, img_dir = dataset_paths(ds)
    if ann.endswith('.json'):
        coco = load_coco(ann)
        drop = {
            img['id']
            for img in coco['images']
            if osp.normpath(osp.join(img_dir, img['file_name'])) in bad
        }
        coco['images'] = [i for i in coco['images'] if i['id'] not in drop]
        if 'annotations' in coco:
            coco['annotations'] = [
                a for a in coco['annotations'] if a['image_id'] not in drop
            ]
        with open(out + '.json', 'w') as f:
            json.dump(coco, f)
        return out + '.json'
    suffix = ds.get('img_suffix', '.jpg')  # a folder: mmseg's split file
    with open(out + '.txt', 'w') as f:
        for image, seg in _folder_files(ds, img_dir):
            if image not in bad and seg not in bad:
                f.write(osp.relpath(image, img_dir)[:-len(suffix)] + '\n')
    return out + '.txt'


def leave_out_bad_images(cfg: Config,
                         phase: str,
                         nproc: Optional[int] = None) -> Optional[tuple]:
    """Decode every image of the phase's datasets; point the datasets and
    their metrics at copies of the annotations without the bad ones.

    Returns (count, list file) of what was left out, or None if nothing.
    """
    report = find_bad(cfg, [phase], nproc).get(phase)
    # only files: the metric reads the annotations as they are
    bad = report['undecodable'] if report else {}
    if not bad:
        return None
    work_dir = osp.abspath(cfg.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    loader = cfg.get(f'{phase}_dataloader')
    for i, ds in enumerate(leaf_datasets(loader.dataset)):
        old, _ = dataset_paths(ds)
        new = _write_without(ds, bad,
                             osp.join(work_dir, f'{phase}{i}_without_bad'))
        ds.ann_file = new
        if old:
            _retarget_evaluator(cfg, phase, old, new)
    list_file = osp.join(work_dir, f'bad_{phase}_images.txt')
    write_list(list_file, bad)
    return len(bad), list_file
