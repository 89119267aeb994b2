"""The backbone of another git revision, imported beside ours."""
import importlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path


def load_baseline(rev: str) -> type:
    """The ``RegionViT`` class of git revision ``rev`` of this checkout,
    imported beside ours: its package is extracted to a temporary folder
    and renamed (scope and op namespace included) so that both register."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ['git', 'rev-parse', '--verify', rev + '^{commit}'],
            cwd=root,
            capture_output=True,
            text=True,
            check=True).stdout.strip()
        archive = subprocess.run(['git', 'archive', sha, 'mmregionvit'],
                                 cwd=root,
                                 capture_output=True,
                                 check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise ValueError(f'--baseline {rev}: not a git revision of {root} '
                         f'({getattr(e, "stderr", e) or e})') from e
    name = f'mmregionvit_{sha[:10]}'
    folder = Path(tempfile.mkdtemp(prefix='regionvit-baseline-'))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter='data')
    (folder / 'mmregionvit').rename(folder / name)
    for path in (folder / name).rglob('*.py'):
        path.write_text(re.sub(r'\bmmregionvit\b', name, path.read_text()))
    # timm's registry is global and keyed by model name alone: the copy
    # must not replace our classifiers there.
    timm_models = folder / name / 'models' / 'timm_models.py'
    if timm_models.exists():
        timm_models.write_text("'''Not registered with timm: a baseline.'''\n")
    sys.path.insert(0, str(folder))
    return importlib.import_module(f'{name}.models').RegionViT
