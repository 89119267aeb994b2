"""mmregionvit.benchmark.gpu_check, tools/gpu_check.py and
tools/gpu_check.sh: the plan, argument handling, the budget and deadlines,
and the reports, run on the CPU (``--device cpu`` runs the check's steps
there)."""
import json
import os
import subprocess

import pytest
from tool_helpers import ROOT, load_tool, run_script

from mmregionvit.benchmark import UsageError
from mmregionvit.benchmark.gpu_check import runner
from mmregionvit.benchmark.gpu_check.plan import check_args

tool = load_tool('gpu_check')

# A small CPU check: the tiny arch at 64x64.
SMALL = [
    '--device', 'cpu', '--archs', 'tiny', '--batches', '1', '2', '--dtypes',
    'fp32', 'bf16', '--input-size', '64', '64', '--warmup', '1', '--repeat',
    '2', '--gemm-size', '256'
]


def check(out, *argv) -> int:
    """The check on the arguments the command line parses: checked, then
    run; its exit code."""
    args = tool.build_parser().parse_args([str(out), *argv])
    check_args(args)
    return runner.run_check(args)


def dry_run(tmp_path, *argv):
    out = tmp_path / 'out'
    assert check(out, '--dry-run', *argv) == 0
    return json.loads((out / 'report.json').read_text()), out


def test_dry_run_plans_by_priority(tmp_path, capsys):
    """The CUDA tests first, then the targets' runs, the timm comparison,
    the profile and the first compiled run, then the eager matrix; every
    combination of arch, batch, task and dtype is planned."""
    report, out = dry_run(tmp_path)
    assert sorted(p.name
                  for p in out.iterdir()) == ['report.json', 'report.md']
    ids = [s['id'] for s in report['steps']]
    assert all(s['status'] == 'planned' for s in report['steps'])
    assert ids[:8] == [
        'tests', 'env', 'attention', 'probe', 'small-b8-infer-bf16',
        'small-b8-train-bf16', 'small-b8-train-bf16-materialised',
        'small-b8-infer-bf16-timm'
    ]
    assert ids.index('small-b8-infer-bf16-compiled') < ids.index(
        'small-b1-infer-fp32')
    for arch in ('small', 'base'):
        for batch in (1, 8):
            for task in ('infer', 'train'):
                for dtype in ('fp32', 'bf16', 'fp16'):
                    assert f'{arch}-b{batch}-{task}-{dtype}' in ids
    assert len(ids) == len(set(ids))
    step = report['steps'][ids.index('small-b8-infer-bf16-timm')]
    assert step['argv'][step['argv'].index('--compare-timm') +
                        1] == 'swin_tiny_patch4_window7_224'
    assert ['--input-size', '672', '1120'] == step['argv'][3:6]
    assert not report['check']['complete'] and report['check']['dry_run']
    assert report['targets']['speed']['met'] is None
    printed = capsys.readouterr().out
    assert 'small-b8-infer-bf16-compiled' in printed and 'budget' in printed
    assert 'dry run' in (out / 'report.md').read_text()


def test_only_selects_steps(tmp_path):
    report, _ = dry_run(tmp_path, '--only', 'compiled$')
    ids = [s['id'] for s in report['steps']]
    assert ids and all(i.endswith('compiled') for i in ids)


@pytest.mark.parametrize('argv, message', [
    (['--archs', 'huge', '--dry-run'], '--archs huge: not a variant'),
    (['--batches', '0', '--dry-run'], 'must be >= 1: batches'),
    (['--budget', '0', '--dry-run'], 'must be >= 1: budget'),
    (['--only', '(', '--dry-run'], 'not a regular expression'),
    (['--only', 'nothing-matches', '--dry-run'], 'selects no step'),
    ([], 'no CUDA device visible'),
])
def test_bad_input(argv, message, tmp_path, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    out = tmp_path / 'out'
    with pytest.raises(UsageError) as exc:
        check(out, *argv)
    assert message in str(exc.value) and '\n' not in str(exc.value)
    assert not out.exists()  # nothing half-written


@pytest.mark.parametrize('argv, message', [
    (['--dtypes', 'fp64', '--dry-run'], 'invalid choice'),
    (['--budget', '0', '--dry-run'], 'error: must be >= 1: budget'),
])
def test_tool_bad_input(argv, message, tmp_path, capsys):
    """The command line reports wrong arguments as a usage error."""
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as exc:
        tool.main([str(out), *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_refuses_a_used_folder(tmp_path):
    (tmp_path / 'old.json').write_text('{}')
    with pytest.raises(UsageError, match='not an empty folder'):
        check(tmp_path, '--dry-run')
    assert [p.name for p in tmp_path.iterdir()] == ['old.json']


@pytest.mark.slow
def test_check_on_the_cpu(tmp_path):
    """The steps run in a worker and the reports are filled in: benchmark
    rows, both targets read, the dtype comparison, attention sizes, the
    probe's kernels and the profile."""
    out = tmp_path / 'out'
    only = ('^(env|attention|probe|profile|tiny-b2-(infer-(bf16|fp32)|'
            'train-bf16(-materialised)?))$')
    code = check(out, *SMALL, '--only', only, '--budget', '3000')
    report = json.loads((out / 'report.json').read_text())
    assert code == 0, [(s['id'], s['error']) for s in report['steps']]
    assert sorted(p.name for p in out.iterdir()) == [
        'log.txt', 'profile.txt', 'report.json', 'report.md'
    ]
    assert report['check']['complete']
    assert all(s['status'] == 'done' for s in report['steps'])
    assert report['env']['torch'] and report['env']['timm']
    assert report['attention_matrices']['tiny-b2']['elements'] > 0
    probe = report['probe']['bf16']
    local = [c for c in probe['inference'] if c['mask']]
    assert local and all(c['mask']['dtype'] == 'bfloat16' for c in local)
    # on a CPU, training's biased attention runs inside its CPU kernel
    assert probe['train_forward'] and probe['backward_kernels'] == [
        '_scaled_dot_product_flash_attention_for_cpu_backward'
    ]
    assert probe['host_syncs']['inference_forward'] is None  # CPU: n/a
    rows = {(r['step'], r['name']) for r in report['rows']}
    assert ('tiny-b2-infer-bf16', 'RegionViT-tiny') in rows
    speed, memory = report['targets']['speed'], report['targets']['memory']
    assert isinstance(speed['met'], bool) and speed['runs']
    assert isinstance(memory['met'], bool)
    [mem] = memory['runs']
    assert mem['dtype'] == 'bf16' and mem['attention_matrices_mb'] > 0
    [cmp] = report['comparisons']['dtype']
    assert (cmp['task'], cmp['dtype']) == ('inference', 'bf16')
    assert report['profile']['total_ms'] > 0
    assert 'Self CPU' in (out / 'profile.txt').read_text()
    md = (out / 'report.md').read_text()
    for section in ('## Steps', '## Targets', '## Benchmarks',
                    '## Attention matrices', '## Profile', '## SDPA kernels'):
        assert section in md
    assert 'RegionViT-tiny' in (out / 'log.txt').read_text()


def test_budget_skips_what_does_not_fit(tmp_path):
    """Steps whose estimate exceeds what is left are skipped, not run."""
    out = tmp_path / 'out'
    code = check(out, *SMALL, '--only', 'compiled', '--budget', '5')
    report = json.loads((out / 'report.json').read_text())
    assert code == 0
    assert report['steps'] and all(s['status'] == 'skipped'
                                   for s in report['steps'])
    assert report['check']['complete']


@pytest.mark.slow
def test_step_past_its_deadline_is_killed(tmp_path, monkeypatch):
    """A step that overruns is killed with its worker, and a new worker
    runs the steps after it."""
    deadlines = iter([0.01, 600])
    monkeypatch.setattr(runner, 'step_timeout',
                        lambda step, left: next(deadlines, 600))
    out = tmp_path / 'out'
    code = check(out, *SMALL, '--only', '^(env|attention)$')
    steps = {
        s['id']: s
        for s in json.loads((out / 'report.json').read_text())['steps']
    }
    assert code == 1
    assert steps['env']['status'] == 'timeout'
    assert 'killed' in steps['env']['error']
    assert steps['attention']['status'] == 'done'


@pytest.mark.slow
def test_tool_end_to_end(tmp_path):
    """python tools/gpu_check.py runs a step in its worker, writes the
    reports and prints the markdown."""
    out = tmp_path / 'out'
    proc = run_script('gpu_check', str(out), *SMALL, '--only', '^env$')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [step] = json.loads((out / 'report.json').read_text())['steps']
    assert (step['id'], step['status']) == ('env', 'done')
    assert '# GPU check' in proc.stdout and '## Environment' in proc.stdout


def test_parse_junit(tmp_path):
    path = tmp_path / 'junit.xml'
    path.write_text(
        '<testsuites><testsuite>'
        '<testcase name="a" time="0.5"/>'
        '<testcase name="b" time="1"><failure message="boom&#10;more"/>'
        '</testcase><testcase name="c"><skipped message="no GPU"/>'
        '</testcase></testsuite></testsuites>')
    result = runner.parse_junit(path)
    assert result['counts'] == dict(passed=1, failed=1, skipped=1)
    assert result['cases'][1] == dict(
        name='b', outcome='failed', seconds=1.0, message='boom')


@pytest.mark.parametrize('args, message', [
    ([], 'usage'),
    (['run'], 'needs an output folder'),
    (['run', 'out'], 'no wheels in'),
    (['prepare', 'extra'], 'takes no arguments'),
])
def test_shell_script_usage(args, message, tmp_path):
    proc = subprocess.run(['bash', 'tools/gpu_check.sh', *args],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          env=dict(
                              os.environ,
                              GPU_CHECK_WHEELS=str(tmp_path / 'none')))
    assert proc.returncode == 2
    assert message in proc.stderr
