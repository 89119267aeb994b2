"""Counting the bad samples that training skips, and saying what an
evaluation left out."""
import logging
import os.path as osp
from typing import Dict, Optional

from mmcv.transforms import Compose
from mmengine.dist import all_gather_object
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ..datasets.bad_samples import (EVAL_FIX, LIST_NAME, RECORD_DIR,
                                    BadSampleError, SkipBadSamples,
                                    iter_leaves, read_records, write_list)
from ..registry import HOOKS


@HOOKS.register_module()
class BadSampleHook(Hook):
    """Merge what every process of every rank skipped into
    ``WORK_DIR/bad_samples.txt`` and stop training when there are too many;
    stop evaluations on a bad image, or say what they left out.

    ``mmregionvit.SkipBadSamples`` makes the per-process lists; after each
    iteration every rank reads its own and the ranks exchange what is new,
    so the cap counts all of them. The lists of an earlier run in the same
    work dir count too: ``guard_datasets`` removes them unless the run
    resumes.

    Args:
        max_share: Stop when more than this share of the training samples
            are bad.
        eval_skipped: ``{'val' or 'test': (count, list file)}`` of the
            images an evaluation leaves out (``--skip-bad-eval-images``).
    """

    priority = 'NORMAL'  # before LoggerHook writes the metrics

    def __init__(self,
                 max_share: float = 0.01,
                 eval_skipped: Optional[Dict[str, tuple]] = None) -> None:
        self.max_share = max_share
        self.eval_skipped = eval_skipped or {}
        self.known: Dict[str, str] = {}
        self.guarded = set()  # ids of the evaluation datasets wrapped

    def before_train(self, runner) -> None:
        self.record_dir = osp.join(runner.work_dir, RECORD_DIR)
        self.list_file = osp.join(runner.work_dir, LIST_NAME)
        self.total = sum(
            len(d) for d in iter_leaves(runner.train_dataloader.dataset))
        self._update(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        self._update(runner)

    def _update(self, runner) -> None:
        mine = read_records(self.record_dir, runner.rank)
        new = {k: v for k, v in mine.items() if k not in self.known}
        parts = all_gather_object(new)
        if not any(parts):
            return
        for part in parts:
            for file, reason in part.items():
                self.known.setdefault(file, reason)
        if runner.rank == 0:
            write_list(self.list_file, self.known)
        bad = len(self.known)
        if bad > self.max_share * self.total:
            raise BadSampleError(
                f'{bad} of {self.total} training samples are bad, more than '
                f'the {self.max_share:.1%} allowed (bad_samples.max_share); '
                f'the list is in {self.list_file}.')

    def _note_eval(self, runner, mode: str, metrics: Optional[dict]) -> None:
        if mode not in self.eval_skipped:
            return
        count, list_file = self.eval_skipped[mode]
        key = 'skipped_bad_images'
        if metrics is not None:
            metrics[key] = count
        runner.message_hub.update_scalar(f'{mode}/{key}', count)
        print_log(
            f'{count} {mode} image(s) that cannot be decoded were left out '
            f'of this evaluation (--skip-bad-eval-images); the list is in '
            f'{list_file}.',
            logger='current',
            level=logging.WARNING)

    def _guard_eval(self, dataset, mode: str) -> None:
        """Stop with one line on a bad image of an evaluation dataset
        (wrapping the pipeline of each of its datasets, once)."""
        for leaf in iter_leaves(dataset):
            if id(leaf) in self.guarded or not hasattr(leaf, 'pipeline'):
                continue
            leaf.pipeline = Compose([
                SkipBadSamples([leaf.pipeline],
                               skip=False,
                               split=mode,
                               on_stop=EVAL_FIX)
            ])
            self.guarded.add(id(leaf))

    def before_val(self, runner) -> None:
        self._guard_eval(runner.val_loop.dataloader.dataset, 'val')

    def before_test(self, runner) -> None:
        self._guard_eval(runner.test_loop.dataloader.dataset, 'test')

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._note_eval(runner, 'val', metrics)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._note_eval(runner, 'test', metrics)
