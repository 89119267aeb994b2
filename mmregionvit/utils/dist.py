"""Starting the processes of a distributed run from the tools.

With GPUs, mmengine's Runner starts the process group itself (``init_dist``
with the config's ``env_cfg.dist_cfg``: NCCL in every base config). Without
GPUs that path fails: mmengine 0.10 selects a CUDA device before it starts
any process group, gloo included. There the group is started here, with
gloo, before the Runner exists (the Runner then leaves it as it is), and the
config is made to run on CPUs.
"""
import datetime
import os
import subprocess
from typing import Dict, Mapping

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.dist import get_rank
from mmengine.logging import print_log

# The environment each launcher provides to every process.
LAUNCHER_ENV = {
    'pytorch':
    ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
    'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
    'mpi': ('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_LOCAL_RANK',
            'OMPI_COMM_WORLD_SIZE', 'MASTER_ADDR'),
}
_STARTERS = {
    'pytorch': 'tools/dist_train.sh or tools/dist_test.sh (torchrun)',
    'slurm': 'srun, e.g. tools/slurm_train.sh',
    'mpi': 'mpirun with MASTER_ADDR set',
}
# Norm layers that PyTorch and mmcv synchronise on GPUs only.
_GPU_ONLY_NORMS = ('SyncBN', 'MMSyncBN')


class LaunchError(ValueError):
    """The process was not started the way its ``--launcher`` says."""


def check_launcher_env(launcher: str,
                       environ: Mapping[str, str] = os.environ) -> None:
    """Fail with one clear message when the launcher's variables are
    missing (e.g. ``--launcher pytorch`` run without torchrun)."""
    missing = [k for k in LAUNCHER_ENV.get(launcher, ()) if k not in environ]
    if missing:
        raise LaunchError(
            f'--launcher {launcher} needs the environment variables '
            f'{", ".join(missing)}, which its launcher sets; start the '
            f'processes with {_STARTERS[launcher]}, or drop --launcher to '
            'run one process.')


def first_host(nodelist: str) -> str:
    """The first host name of a Slurm node list (``node[1-4]`` ->
    ``node1``), as mmengine finds it: ``scontrol show hostname``."""
    try:
        out = subprocess.run(['scontrol', 'show', 'hostname', nodelist],
                             capture_output=True,
                             text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise LaunchError(
            f'cannot expand SLURM_NODELIST={nodelist!r} with scontrol ({e});'
            ' set MASTER_ADDR to the first node\'s address.') from e
    return out.split()[0]


def torch_env(launcher: str,
              environ: Mapping[str, str] = os.environ) -> Dict[str, str]:
    """``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
    ``MASTER_PORT`` of this process, derived from the launcher's variables
    as mmengine's ``init_dist`` derives them."""
    check_launcher_env(launcher, environ)
    if launcher == 'pytorch':
        return {k: environ[k] for k in LAUNCHER_ENV['pytorch']}
    if launcher == 'slurm':
        addr = environ.get('MASTER_ADDR') or first_host(
            environ['SLURM_NODELIST'])
        return dict(
            RANK=environ['SLURM_PROCID'],
            LOCAL_RANK=environ.get('SLURM_LOCALID', '0'),
            WORLD_SIZE=environ['SLURM_NTASKS'],
            MASTER_ADDR=addr,
            MASTER_PORT=environ.get('MASTER_PORT', '29500'))
    if launcher == 'mpi':
        return dict(
            RANK=environ['OMPI_COMM_WORLD_RANK'],
            LOCAL_RANK=environ['OMPI_COMM_WORLD_LOCAL_RANK'],
            WORLD_SIZE=environ['OMPI_COMM_WORLD_SIZE'],
            MASTER_ADDR=environ['MASTER_ADDR'],
            MASTER_PORT=environ.get('MASTER_PORT', '29500'))
    raise LaunchError(f'unknown launcher {launcher!r}; use pytorch, slurm '
                      'or mpi.')


def _to_plain_bn(cfg) -> int:
    """Replace GPU-only norm types by ``BN`` in a model config; returns how
    many were replaced."""
    count = 0
    if isinstance(cfg, dict):
        if cfg.get('type') in _GPU_ONLY_NORMS:
            cfg['type'] = 'BN'
            count += 1
        for value in cfg.values():
            count += _to_plain_bn(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            count += _to_plain_bn(value)
    return count


def adapt_to_cpus(cfg: Config) -> None:
    """Make a distributed config run on CPUs: gloo, DistributedDataParallel
    without ``device_ids`` (mmengine passes the local rank, which DDP
    refuses for CPU modules; a config's own ``model_wrapper_cfg`` is kept),
    and plain BN for SyncBN, which PyTorch runs on GPUs only: each process
    then normalises its own batch, as in a one-process run (where mmengine
    turns SyncBN into BN too)."""
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    replaced = _to_plain_bn(cfg.model)
    if cfg.get('sync_bn'):
        cfg.sync_bn = None
        replaced += 1
    if replaced and get_rank() == 0:
        print_log(
            'SyncBN needs GPUs: on CPUs each process normalises its own '
            'batch (BN).',
            logger='current')


def setup_distributed(cfg: Config) -> None:
    """Prepare the process group for ``cfg.launcher`` (``none``: nothing).

    With GPUs only the launcher's variables are checked; mmengine starts
    the group. Without GPUs a gloo group is started here and the config
    adapted (``adapt_to_cpus``).
    """
    if cfg.launcher == 'none':
        return
    check_launcher_env(cfg.launcher)
    if torch.cuda.is_available():
        return
    if not torch_dist.is_initialized():
        os.environ.update(torch_env(cfg.launcher))
        timeout = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout')
        kwargs = {} if timeout is None else dict(
            timeout=datetime.timedelta(seconds=timeout))
        torch_dist.init_process_group(backend='gloo', **kwargs)
    adapt_to_cpus(cfg)
