"""Running the tools on a tiny generated shapes dataset."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from mmregionvit.datasets.shapes import generate

ROOT = Path(__file__).resolve().parents[1]

DEMO_DET = str(ROOT / 'configs/detection/maskrcnn_regionvit_demo_shapes.py')


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py`` as a module (by path: tools/test.py would clash
    with the standard library's ``test`` package)."""
    spec = importlib.util.spec_from_file_location(
        f'mmregionvit_tool_{name}', ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def run_script(name: str, *argv: str) -> subprocess.CompletedProcess:
    """``python tools/<name>.py ARGV`` in a new process, from the checkout,
    importing this checkout's package; its output as text."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])))
    return subprocess.run([sys.executable, f'tools/{name}.py', *argv],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True)


def tiny_shapes(root: Path) -> str:
    generate(str(root), seed=1, num_train=8, num_val=4, size=64)
    return str(root)


def loader_options(data: str, batch_size: int) -> dict:
    """Every dataloader on ``data``, in this process, small batches."""
    opts = {}
    for split in ('train', 'val', 'test'):
        opts.update({
            f'{split}_dataloader.dataset.data_root': f'{data}/',
            f'{split}_dataloader.num_workers': 0,
            f'{split}_dataloader.persistent_workers': False,
            f'{split}_dataloader.batch_size': batch_size
        })
    return opts


def data_options(data: str) -> dict:
    """Overrides pointing the demo detection config at ``data``."""
    ann = f'{data}/annotations/instances_val.json'
    opts = {'val_evaluator.ann_file': ann, 'test_evaluator.ann_file': ann}
    opts.update(loader_options(data, 2))
    return opts


def as_cli(options: dict) -> list:
    """``key=value`` strings for ``--cfg-options``."""
    return [f'{k}={v}' for k, v in options.items()]
