"""Distributed training and testing on CPUs (gloo), two processes against
one: tools/dist_train.sh, tools/dist_test.sh and tools/slurm_train.sh.

Two processes and one process that accumulates the gradients of the two
processes' batches over two iterations compute the same update:
DistributedDataParallel averages the processes' gradients, and each process
normalises its losses by its own batch, as one process does per iteration.
(One process with both batches in one would normalise the detector's
losses by counts over both: not the same numbers.) The test configs
(tests/configs) take the random choices out of training so that equal
numbers are expected; tests/dist_probe.py records them in every process.
The processes run one thread each, and so does the reference here.
"""
import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip('mmdet')
from dist_probe import probe_path
from tolerances import check, max_abs
from tool_helpers import ROOT, as_cli, data_options, load_tool, tiny_shapes

from mmregionvit.utils import dist as dist_utils
from mmregionvit.utils.config import load_config

train_tool = load_tool('train')
test_tool = load_tool('test')

CONFIGS = ROOT / 'tests' / 'configs'
DET = str(CONFIGS / 'maskrcnn_demo_deterministic.py')
SEG = str(CONFIGS / 'upernet_demo_deterministic.py')
POSE = str(CONFIGS / 'td-hm_demo_deterministic.py')
RETINA = str(CONFIGS / 'retinanet_demo_last_three_stages.py')
NO_VAL = ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']


@contextlib.contextmanager
def one_thread():
    """Run in this process as each launched process runs: one thread (the
    launcher sets OMP_NUM_THREADS=1), so that sums add up in the same
    order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_train(args: list) -> None:
    """tools/train.py in this process."""
    with one_thread():
        assert train_tool.main(args) == 0


def run_test(args: list) -> None:
    """tools/test.py in this process."""
    with one_thread():
        assert test_tool.main(args) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def launch(cmd: list, log: Path, env: dict = None) -> None:
    """Run a launcher script from the repository root; fail with its log's
    tail."""
    full_env = dict(
        os.environ,
        PYTHON=sys.executable,
        PORT=str(free_port()),
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / 'tests')]),
        **(env or {}))
    with open(log, 'w') as out:
        code = subprocess.run(['bash', *cmd],
                              cwd=ROOT,
                              env=full_env,
                              stdout=out,
                              stderr=subprocess.STDOUT,
                              timeout=600).returncode
    assert code == 0, f'{cmd[0]} failed:\n' + log.read_text()[-4000:]


def probes(work: Path, ranks: int = 2) -> list:
    return [
        torch.load(probe_path(str(work), r), weights_only=False)
        for r in range(ranks)
    ]


def cli(options: dict, *extra: str) -> list:
    return ['--cfg-options', *as_cli(options), *extra]


def assert_states_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def assert_close_numbers(a: dict, b: dict, rtol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=rtol, abs=1e-6), k


def assert_grads_close(a: dict, b: dict) -> None:
    """Equal gradients up to float rounding: each tensor's largest
    difference, relative to its largest gradient, within the
    ``distributed_grad`` bound."""
    assert a.keys() == b.keys()
    for name in a:
        scale = max(a[name].abs().max().item(), 1e-12)
        check('distributed_grad', max_abs(a[name], b[name]) / scale, name)


def assert_resumed_from(start: dict, checkpoint: Path) -> None:
    """Training continues with the checkpoint's iteration, weights,
    optimizer and LR schedule."""
    saved = torch.load(checkpoint, weights_only=False)
    assert start['iter'] == saved['meta']['iter']
    assert_states_equal(start['state'], saved['state_dict'])
    for key, value in saved['optimizer']['state'].items():
        for name, tensor in value.items():
            assert torch.equal(start['optimizer']['state'][key][name],
                               tensor), name
    assert start['schedulers'] == saved['param_schedulers']


def assert_same_first_update(two: list, one: dict) -> None:
    """Two processes against one process that accumulates their images
    over two iterations: each process's images and losses are one
    iteration of the reference, and the gradients of the update are
    equal."""
    for rank, probe in enumerate(two):
        first = probe['iters'][0]
        assert first['samples'] == one['iters'][rank]['samples']
        assert_close_numbers(first['losses'], one['iters'][rank]['losses'])
        assert probe['no_grad'] == [], 'parameters without a gradient'
    assert two[0]['iters'][0]['samples'] != two[1]['iters'][0]['samples']
    assert one['no_grad'] == []
    assert_grads_close(two[0]['grads'], two[1]['grads'])
    assert_grads_close(two[0]['grads'], one['grads'])


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    return tiny_shapes(tmp_path_factory.mktemp('shapes') / 'shapes')


# ---------------------------------------------------------------- detection


@pytest.fixture(scope='module')
def det(shapes, tmp_path_factory):
    """Mask R-CNN on two images, in turn on one and two processes:

    one   iteration 1, one process, batch 2        -> one/iter_1.pth
    two   iterations 2-3, two processes, batch 1, resumed from
          one/iter_1.pth                            -> two/iter_3.pth
    ref   one process, batch 1, two iterations accumulated, from the
          weights of one/iter_1.pth: the update of two's iteration 2
    back  iteration 4, one process, batch 2, resumed from two/iter_3.pth
    """
    tmp = tmp_path_factory.mktemp('det')
    work = {k: tmp / k for k in ('one', 'two', 'ref', 'back')}
    options = dict(
        data_options(shapes), **{'train_dataloader.dataset.indices': 2})

    def batch(n: int) -> dict:
        return dict(options, **{'train_dataloader.batch_size': n})

    run_train([
        DET, '--work-dir',
        str(work['one']), *cli(batch(2), 'train_cfg.max_iters=1', *NO_VAL)
    ])
    launch([
        'tools/dist_train.sh', DET, '2', '--work-dir',
        str(work['two']), '--resume',
        str(work['one'] / 'iter_1.pth'),
        *cli(batch(1), 'train_cfg.max_iters=3', *NO_VAL)
    ], tmp / 'two.log')
    run_train([
        DET, '--work-dir',
        str(work['ref']), *cli(
            batch(1), 'train_cfg.max_iters=2',
            'optim_wrapper.accumulative_counts=2',
            f'load_from={work["one"] / "iter_1.pth"}', *NO_VAL)
    ])
    run_train([
        DET, '--work-dir',
        str(work['back']), '--resume',
        str(work['two'] / 'iter_3.pth'),
        *cli(batch(2), 'train_cfg.max_iters=4', *NO_VAL)
    ])
    return work


@pytest.mark.slow
def test_one_process_checkpoint_resumes_on_two(det):
    work = det
    for probe in probes(work['two']):
        assert_resumed_from(probe['start'], work['one'] / 'iter_1.pth')


@pytest.mark.slow
def test_two_processes_update_as_one(det):
    work = det
    two = probes(work['two'])
    assert_same_first_update(two, probes(work['ref'], 1)[0])


@pytest.mark.slow
def test_rank0_checkpoint_resumes_on_one_process(det):
    work = det
    two = probes(work['two'])
    checkpoint = work['two'] / 'iter_3.pth'
    # what rank 0 saved is the model of both processes
    saved = torch.load(checkpoint, weights_only=False)['state_dict']
    assert_states_equal(two[1]['end_state'], saved)
    (back, ) = probes(work['back'], 1)
    assert_resumed_from(back['start'], checkpoint)
    assert len(back['iters']) == 1  # iteration 4 of 4


@pytest.mark.slow
def test_dist_test_gives_one_process_metrics(shapes, det, tmp_path):
    """dist_test.sh on two processes and test.py on one evaluate the same
    predictions: three images, so the second process's share is padded
    with a repeated image that the evaluation must drop."""
    checkpoint = str(det['back'] / 'iter_4.pth')
    options = dict(
        data_options(shapes),
        **{
            'test_dataloader.dataset.indices': 3,
            'test_dataloader.batch_size': 1,
            'model.test_cfg.rcnn.score_thr': 0.0,  # keep what it finds
        })

    def results(name: str) -> dict:
        return {
            kind: json.loads((tmp_path / f'{name}.{kind}.json').read_text())
            for kind in ('bbox', 'segm')
        }

    launch([
        'tools/dist_test.sh', DET, checkpoint, '2', '--work-dir',
        str(tmp_path / 'two'),
        *cli(options, f'test_evaluator.outfile_prefix={tmp_path}/two')
    ], tmp_path / 'two.log')
    run_test([
        DET, checkpoint, '--work-dir',
        str(tmp_path / 'one'),
        *cli(options, f'test_evaluator.outfile_prefix={tmp_path}/one')
    ])
    (one, ) = probes(tmp_path / 'one', 1)
    two = probes(tmp_path / 'two')
    assert one['test_metrics']['coco/bbox_mAP_50'] > 0
    for probe in two:
        assert probe['test_metrics'] == one['test_metrics']
    expected, got = results('one'), results('two')
    for kind in ('bbox', 'segm'):
        assert len({r['image_id'] for r in expected[kind]}) == 3
        assert len(got[kind]) == len(expected[kind]), kind
        for a, b in zip(got[kind], expected[kind], strict=True):
            assert a['image_id'] == b['image_id']
            assert a['category_id'] == b['category_id']
            assert a['score'] == pytest.approx(b['score'], abs=1e-5)
            if kind == 'bbox':
                assert a['bbox'] == pytest.approx(b['bbox'], abs=1e-3)
            else:
                assert a['segmentation'] == b['segmentation']


# ------------------------------------------------- segmentation and keypoints


def loaders(data: str, **extra) -> dict:
    """Every dataloader on ``data`` in the process, batches of one for
    evaluation (predictions do not depend on the batch)."""
    opts = {}
    for split in ('train', 'val', 'test'):
        opts.update({
            f'{split}_dataloader.dataset.data_root': f'{data}/',
            f'{split}_dataloader.num_workers': 0,
            f'{split}_dataloader.persistent_workers': False,
            f'{split}_dataloader.batch_size': 1
        })
    return dict(opts, **extra)


def evaluate_on_one_process(config: str, state: dict, options: dict,
                            work: Path) -> dict:
    """test.py in this process on a model state; its probe record."""
    checkpoint = work / 'evaluated.pth'
    work.mkdir()
    torch.save({'state_dict': state, 'meta': {}}, checkpoint)
    run_test([config, str(checkpoint), '--work-dir', str(work), *cli(options)])
    return probes(work, 1)[0]


def assert_validation_as_one_process(config: str, two: list, options: dict,
                                     work: Path) -> dict:
    """The validation the two processes ran (on one model: SyncBuffersHook
    averaged their BatchNorm statistics) gives test.py's metrics on one."""
    assert_states_equal(two[0]['val_state'], two[1]['val_state'])
    one = evaluate_on_one_process(config, two[0]['val_state'], options, work)
    assert two[0]['val_metrics'] == two[1]['val_metrics']
    assert two[0]['val_metrics'] == one['test_metrics']
    return one['test_metrics']


@pytest.mark.slow
def test_segmentation_on_two_processes(shapes, tmp_path):
    """UPerNet with gradient checkpointing: two processes with two images
    each against one process that accumulates their batches. BatchNorm
    normalises over a batch, so the reference's batches are the processes'
    (images 0, 2 and 1, 3), and SyncBN, which needs GPUs, is plain BN on
    every process."""
    options = loaders(shapes, **{'model.backbone.with_cp': True})
    two_dir, ref_dir = tmp_path / 'two', tmp_path / 'ref'
    launch([
        'tools/dist_train.sh', SEG, '2', '--work-dir',
        str(two_dir),
        *cli(options, 'train_dataloader.dataset.indices=4',
             'train_dataloader.batch_size=2', 'train_cfg.max_iters=2')
    ], tmp_path / 'two.log')
    run_train([
        SEG, '--work-dir',
        str(ref_dir),
        *cli(options, 'train_dataloader.dataset.indices=[0,2,1,3]',
             'train_dataloader.batch_size=2',
             'optim_wrapper.accumulative_counts=2', 'train_cfg.max_iters=2', *
             NO_VAL)
    ])
    two = probes(two_dir)
    assert_same_first_update(two, probes(ref_dir, 1)[0])
    metrics = assert_validation_as_one_process(SEG, two, options,
                                               tmp_path / 'one')
    assert metrics['aAcc'] > 0


def slurm_env(srun_log: Path) -> dict:
    """The environment of tools/slurm_train.sh under the stand-in srun and
    scontrol of tests/fake_slurm: two tasks on this machine, no GPUs."""
    return dict(
        PATH=os.pathsep.join([
            str(ROOT / 'tests' / 'fake_slurm'),
            os.path.dirname(sys.executable), os.environ['PATH']
        ]),
        GPUS='2',
        GPUS_PER_NODE='2',
        GRES='none',
        CPUS_PER_TASK='1',
        MASTER_PORT=str(free_port()),
        FAKE_SRUN_LOG=str(srun_log),
        # the first host is this machine
        FAKE_SLURM_NODELIST='localhost,node2')


@pytest.mark.slow
def test_keypoints_on_two_slurm_tasks(shapes, tmp_path):
    """Top-down heatmaps with the embeddings and first stage frozen,
    trained by slurm_train.sh as two Slurm tasks (srun stands in), against
    one process that accumulates both tasks' instances (the learning rate,
    scaled by --auto-scale-lr, does not enter the gradients); the keypoints
    the two tasks predict in their validation are test.py's on one."""
    ann = f'{shapes}/annotations/keypoints_val.json'
    options = loaders(
        shapes, **{
            'val_evaluator.ann_file': ann,
            'test_evaluator.ann_file': ann,
            'train_dataloader.dataset.indices': 2,
            'model.backbone.frozen_stages': 1
        })
    two_dir, ref_dir = tmp_path / 'two', tmp_path / 'ref'
    srun_log = tmp_path / 'srun.json'
    launch([
        'tools/slurm_train.sh', 'cpu', 'pose', POSE,
        str(two_dir), '--auto-scale-lr',
        *cli(options, 'train_cfg.max_iters=2',
             f'val_evaluator.outfile_prefix={tmp_path}/two')
    ],
           tmp_path / 'two.log',
           env=slurm_env(srun_log))
    srun = json.loads(srun_log.read_text())
    assert (srun['partition'], srun['job_name'], srun['gres']) == \
        ('cpu', 'pose', 'none')
    assert (srun['ntasks'], srun['ntasks_per_node'], srun['cpus_per_task'],
            srun['kill_on_bad_exit']) == (2, 2, 1, 1)
    assert srun['command'][1:4] == ['-u', 'tools/train.py', POSE]
    assert f'--work-dir={two_dir}' in srun['command']
    run_train([
        POSE, '--work-dir',
        str(ref_dir), *cli(options, 'optim_wrapper.accumulative_counts=2',
                           'train_cfg.max_iters=2', *NO_VAL)
    ])
    two = probes(two_dir)
    assert [p['world_size'] for p in two] == [2, 2]
    # --auto-scale-lr: 2 tasks x 1 instance against the demo's batch of 32
    assert two[0]['start']['initial_lr'] == pytest.approx(1e-3 * 2 / 32)
    assert_same_first_update(two, probes(ref_dir, 1)[0])
    assert not any(k.startswith('backbone.stages.0.') for k in two[0]['grads'])
    options['test_evaluator.outfile_prefix'] = f'{tmp_path}/one'
    assert_validation_as_one_process(POSE, two, options, tmp_path / 'one')
    one, got = (
        json.loads((tmp_path / f'{name}.keypoints.json').read_text())
        for name in ('one', 'two'))
    assert len(one) == len(got) > 0
    for a, b in zip(got, one, strict=True):
        assert (a['image_id'], a['category_id']) == \
            (b['image_id'], b['category_id'])
        assert a['keypoints'] == pytest.approx(b['keypoints'], abs=1e-3)
        assert a['score'] == pytest.approx(b['score'], abs=1e-5)


# ------------------------------------------- parameters that take no part


def params_without_grad(config: str, options: dict) -> list:
    """Trainable parameters left without a gradient by one training step:
    DistributedDataParallel with find_unused_parameters=False fails on
    any."""
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import Runner
    cfg = load_config(config, options)
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    batch = next(iter(Runner.build_dataloader(cfg.train_dataloader)))
    loss, _ = model.parse_losses(
        model(**model.data_preprocessor(batch, True), mode='loss'))
    loss.backward()
    return [
        name for name, p in model.named_parameters()
        if p.requires_grad and p.grad is None
    ]


def retina_options(shapes: str, **backbone) -> dict:
    options = {f'model.backbone.{k}': v for k, v in backbone.items()}
    options['train_dataloader.dataset.data_root'] = f'{shapes}/'
    return options


@pytest.mark.slow
def test_retinanet_on_the_last_three_stages_uses_every_parameter(shapes):
    """RetinaNet on strides 8-32 (out_indices=(1, 2, 3)): the first stage
    and its norm still feed the second. The distributed runs above cover
    Mask R-CNN, gradient checkpointing and frozen stages."""
    assert params_without_grad(RETINA, retina_options(shapes)) == []
    # the check can fail: a last stage whose output nothing takes
    unused = params_without_grad(
        RETINA,
        dict(
            retina_options(shapes, out_indices=(0, 1, 2)),
            **{'model.neck.in_channels': [32, 64, 128]}))
    assert unused and all(n.startswith('backbone.stages.3.') for n in unused)


# -------------------------------------------------------- launcher set-up


def test_launcher_without_its_variables_is_one_clear_error(
        shapes, tmp_path, capsys, monkeypatch):
    for key in dist_utils.LAUNCHER_ENV['pytorch']:
        monkeypatch.delenv(key, raising=False)
    work = tmp_path / 'never'
    assert train_tool.main([
        DET, '--work-dir',
        str(work), '--launcher', 'pytorch', *cli(data_options(shapes))
    ]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert 'needs the environment variables RANK' in err
    assert 'tools/dist_train.sh' in err and not work.exists()


def test_launcher_variables_give_the_torch_ones(monkeypatch):
    monkeypatch.setenv(
        'PATH',
        os.pathsep.join(
            [str(ROOT / 'tests' / 'fake_slurm'), os.environ['PATH']]))
    slurm = dict(
        SLURM_PROCID='5',
        SLURM_LOCALID='1',
        SLURM_NTASKS='8',
        SLURM_NODELIST='nodeA,nodeB')
    assert dist_utils.torch_env('slurm', slurm) == dict(
        RANK='5',
        LOCAL_RANK='1',
        WORLD_SIZE='8',
        MASTER_ADDR='nodeA',
        MASTER_PORT='29500')
    given = dict(slurm, MASTER_ADDR='10.0.0.1', MASTER_PORT='1234')
    env = dist_utils.torch_env('slurm', given)
    assert (env['MASTER_ADDR'], env['MASTER_PORT']) == ('10.0.0.1', '1234')
    monkeypatch.setenv('PATH', '/nonexistent')  # no scontrol
    with pytest.raises(dist_utils.LaunchError, match='set MASTER_ADDR'):
        dist_utils.torch_env('slurm', slurm)
    mpi = dict(
        OMPI_COMM_WORLD_RANK='3',
        OMPI_COMM_WORLD_LOCAL_RANK='1',
        OMPI_COMM_WORLD_SIZE='4',
        MASTER_ADDR='host0')
    assert dist_utils.torch_env('mpi', mpi) == dict(
        RANK='3',
        LOCAL_RANK='1',
        WORLD_SIZE='4',
        MASTER_ADDR='host0',
        MASTER_PORT='29500')


def test_gpus_keep_mmengines_launch(monkeypatch):
    """With GPUs the config and the process group are left to mmengine
    (NCCL, DDP on the local GPU, SyncBN)."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.distributed, 'init_process_group', pytest.fail)
    for key in dist_utils.LAUNCHER_ENV['pytorch']:
        monkeypatch.setenv(key, '0')
    cfg = load_config(SEG, launcher='pytorch')
    before = cfg.to_dict()
    dist_utils.setup_distributed(cfg)
    assert cfg.to_dict() == before
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'


@pytest.mark.slow
def test_cpu_config_uses_gloo_plain_ddp_and_bn():
    cfg = load_config(SEG, launcher='pytorch')
    assert cfg.model.decode_head.norm_cfg.type == 'SyncBN'
    dist_utils.adapt_to_cpus(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.device_ids is None
    assert not cfg.model_wrapper_cfg.find_unused_parameters
    assert cfg.model.decode_head.norm_cfg.type == 'BN'
    assert cfg.model.auxiliary_head.norm_cfg.type == 'BN'
    assert 'SyncBN' not in str(cfg.model)
