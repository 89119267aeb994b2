"""A hook that records, in every process of a run, what the distributed
tests compare: the state training starts from, the images and losses of the
first iterations, the gradients of the first optimizer step, the model a
validation evaluates and its metrics.

Imported by the test configs (``custom_imports``); each process writes
``WORK_DIR/probe/rank{r}.pt`` when the run ends.
"""
import copy
import os
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

# iterations whose images and losses are kept
KEPT_ITERS = 4


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def _sample_id(sample) -> tuple:
    """What identifies a training sample: image path and, for top-down
    pose, the instance."""
    meta = sample.metainfo
    return meta.get('img_path'), meta.get('id')


def probe_path(work_dir: str, rank: int) -> str:
    return osp.join(work_dir, 'probe', f'rank{rank}.pt')


@HOOKS.register_module()
class DistProbe(Hook):
    # after SyncBuffersHook (NORMAL): the model as validation sees it
    priority = 'LOW'

    def __init__(self) -> None:
        self.record = dict(iters=[], grads=None, no_grad=None)

    def before_train(self, runner) -> None:
        optim = runner.optim_wrapper
        self.record['world_size'] = runner.world_size
        self.record['start'] = dict(
            iter=runner.iter,
            state=copy.deepcopy(_unwrap(runner.model).state_dict()),
            optimizer=copy.deepcopy(optim.state_dict()),
            schedulers=[
                copy.deepcopy(s.state_dict())
                for s in runner.param_schedulers or []
            ],
            initial_lr=optim.param_groups[0].get('initial_lr'))
        step = optim.step

        def step_and_record(*args, **kwargs):
            if self.record['grads'] is None:
                self._record_grads(runner)
            return step(*args, **kwargs)

        optim.step = step_and_record  # between backward and the update

    def _record_grads(self, runner) -> None:
        """The gradients the first update applies (all-reduced under
        DistributedDataParallel), and the trainable parameters without
        one."""
        grads, no_grad = {}, []
        for name, p in _unwrap(runner.model).named_parameters():
            if not p.requires_grad:
                continue
            if p.grad is None:
                no_grad.append(name)
            else:
                grads[name] = p.grad.detach().clone()
        self.record.update(grads=grads, no_grad=no_grad)

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        if len(self.record['iters']) < KEPT_ITERS:
            self.record['iters'].append(
                dict(
                    samples=[
                        _sample_id(s) for s in data_batch['data_samples']
                    ],
                    losses={
                        k: torch.as_tensor(v).item()
                        for k, v in outputs.items()
                    }))

    def after_train(self, runner) -> None:
        self.record['end_state'] = copy.deepcopy(
            _unwrap(runner.model).state_dict())

    def before_val_epoch(self, runner) -> None:
        self.record['val_state'] = copy.deepcopy(
            _unwrap(runner.model).state_dict())

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.record['val_metrics'] = metrics

    def after_test_epoch(self, runner, metrics=None) -> None:
        self.record['test_metrics'] = metrics

    def after_run(self, runner) -> None:
        path = probe_path(runner.work_dir, get_rank())
        os.makedirs(osp.dirname(path), exist_ok=True)
        torch.save(self.record, path)
