"""Running the GPU check: the CUDA tests in pytest, the other steps in
worker processes killed at their deadlines, the reports rewritten after
every step."""
import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional

from .plan import Step, build_plan
from .report import build_report, render_markdown
from .steps import DONE, ROOT, START

LOG_LIMIT = 8 * 2**20  # bytes of log.txt
STARTUP_S = 120  # a worker's imports and CUDA start before its first step


class Run:
    """The state of one check: its steps, results and output files."""

    def __init__(self, args: argparse.Namespace, steps: List[Step]) -> None:
        self.args = args
        self.steps = steps
        self.results: Dict[str, Any] = {}
        self.started = time.time()
        self.deadline = self.started + args.budget
        self.work = Path(tempfile.mkdtemp(prefix='gpu-check-'))
        self.log = None
        self.log_bytes = 0

    def remaining(self) -> float:
        return self.deadline - time.time()

    def write_log(self, text: str) -> None:
        if self.log is None or self.log_bytes > LOG_LIMIT:
            return
        self.log.write(text)
        self.log_bytes += len(text)
        if self.log_bytes > LOG_LIMIT:
            self.log.write('\n[log cut at 8 MiB]\n')
        self.log.flush()

    def save(self) -> None:
        report = build_report(self)
        out = self.args.out_dir
        (out / 'report.json').write_text(json.dumps(report, indent=1))
        (out / 'report.md').write_text(render_markdown(report))

    def collect(self, step: Step) -> None:
        """Read a finished step's result file."""
        path = self.work / f'{step.id}.json'
        if not path.exists():
            return
        result = json.loads(path.read_text())
        step.status, step.error = result['status'], result.get('error')
        step.duration_s = result.get('duration_s')
        if 'data' in result:
            self.results[step.id] = result['data']
        if step.kind == 'profile' and 'data' in result:
            (self.args.out_dir / 'profile.txt').write_text(
                result['data']['table'])


def step_timeout(step: Step, remaining: float) -> float:
    """Seconds a step may take before it is killed."""
    limit = step.limit_s or max(3 * step.estimate_s, step.estimate_s + 60)
    return max(0.0, min(limit, remaining))


def start_child(cmd: List[str]) -> subprocess.Popen:
    """``cmd`` in a process group of its own (so that killing it also ends
    the processes it started, e.g. Inductor's compile workers), its
    output merged into one text pipe."""
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED='1'),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True)


def kill_child(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # already gone
        pass


def run_tests(run: Run, step: Step) -> None:
    """pytest on the CUDA-marked tests, in a child process."""
    junit = run.work / 'junit.xml'
    cmd = [
        sys.executable, '-m', 'pytest', 'tests/test_cuda.py', '-m', 'cuda',
        '-q', '-rfEs', '-p', 'no:cacheprovider', f'--junitxml={junit}'
    ]
    start = time.time()
    proc = start_child(cmd)
    try:
        output, _ = proc.communicate(
            timeout=step_timeout(step, run.remaining()))
        step.status = 'passed' if proc.returncode == 0 else 'failed'
        if proc.returncode not in (0, 1):
            step.error = f'pytest exited with {proc.returncode}'
    except subprocess.TimeoutExpired:
        kill_child(proc)
        output, _ = proc.communicate()
        step.status, step.error = 'timeout', 'pytest overran its deadline'
    run.write_log(output)
    step.duration_s = time.time() - start
    if junit.exists():
        run.results['tests'] = parse_junit(junit)


def parse_junit(path: Path) -> Dict[str, Any]:
    """Counts and one line per test from a JUnit XML file."""
    cases = []
    for case in ET.parse(path).getroot().iter('testcase'):
        outcome, message = 'passed', ''
        for tag in ('failure', 'error', 'skipped'):
            node = case.find(tag)
            if node is not None:
                outcome = 'failed' if tag == 'failure' else tag
                message = (node.get('message') or '').splitlines()[0][:300] \
                    if node.get('message') else ''
                break
        cases.append(
            dict(
                name=case.get('name'),
                outcome=outcome,
                seconds=float(case.get('time', 0)),
                message=message))
    counts: Dict[str, int] = {}
    for case in cases:
        counts[case['outcome']] = counts.get(case['outcome'], 0) + 1
    return dict(counts=counts, cases=cases)


def _read_lines(stream, lines: 'queue.Queue[Optional[str]]') -> None:
    """Each line of ``stream``, then None; the stream closed at its end."""
    with stream:
        for line in stream:
            lines.put(line)
    lines.put(None)


def run_worker_steps(run: Run, steps: List[Step]) -> None:
    """Run ``steps`` in a worker process. A step that overruns its deadline
    is killed with the worker, and a new worker takes the steps after it;
    so does one after a worker that died in a step."""
    pending = list(steps)
    while pending:
        plan = run.work / 'plan.json'
        plan.write_text(
            json.dumps(
                dict(
                    steps=[asdict(s) for s in pending],
                    deadline=run.deadline,
                    device=run.args.device,
                    dtypes=run.args.dtypes,
                    input_size=run.args.input_size)))
        proc = start_child([
            sys.executable,
            str(ROOT / 'tools' / 'gpu_check.py'), '--worker',
            str(plan),
            str(run.work)
        ])
        lines: 'queue.Queue[Optional[str]]' = queue.Queue()
        threading.Thread(
            target=_read_lines, args=(proc.stdout, lines),
            daemon=True).start()
        by_id = {s.id: s for s in pending}
        current, since, killed = None, time.time(), False
        while True:
            limit = (
                step_timeout(by_id[current], run.remaining())
                if current else max(run.remaining(), 0) + STARTUP_S)
            try:
                line = lines.get(timeout=max(0.1, since + limit - time.time()))
            except queue.Empty:
                kill_child(proc)
                killed = True
                break
            if line is None:
                break
            if line.startswith(START):
                current, since = line[len(START):].strip(), time.time()
                by_id[current].status = 'running'
            elif line.startswith(DONE):
                run.collect(by_id[line[len(DONE):].strip()])
                current, since = None, time.time()
            else:
                run.write_log(line)
                continue
            run.save()
        proc.wait()
        if current:  # killed at its deadline, or the worker died in it
            step = by_id[current]
            step.duration_s = time.time() - since
            step.status = 'timeout' if killed else 'error'
            step.error = (f'killed after {step.duration_s:.0f} s (its '
                          'deadline)' if killed else
                          f'the worker died in it (exit {proc.returncode})')
            run.write_log(f'\n[{step.id}: {step.error}]\n')
        started = any(s.status != 'planned' for s in pending)
        pending = [s for s in pending if s.status == 'planned']
        if pending and (not started or run.remaining() <= 0):
            why = ('budget spent' if run.remaining() <= 0 else
                   f'the worker stopped before it (exit {proc.returncode})')
            for step in pending:
                step.status, step.error = 'skipped', why
            pending = []
        run.save()


def run_check(args: argparse.Namespace) -> int:
    steps = build_plan(args)
    run = Run(args, steps)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        run.save()
        for step in steps:
            print(f'{step.estimate_s:6.0f} s  {step.id:34s} {step.title}')
        print(f'planned {sum(s.estimate_s for s in steps):.0f} s of steps '
              f'for a budget of {args.budget:.0f} s')
        return 0
    with open(args.out_dir / 'log.txt', 'w') as log:
        run.log = log
        run.save()
        for step in steps:
            if step.kind == 'tests':
                step.status = 'running'
                run.save()
                run_tests(run, step)
                run.save()
        run_worker_steps(run, [s for s in steps if s.kind != 'tests'])
    run.save()
    shutil.rmtree(run.work, ignore_errors=True)
    print((args.out_dir / 'report.md').read_text())
    bad = [s for s in steps if s.status in ('failed', 'error', 'timeout')]
    return 1 if bad else 0
