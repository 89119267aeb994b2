"""The built package: what setup.py declares, that the wheel ships every
config, and that an installed (not editable) package's configs can be
inherited as ``mmregionvit::...``."""
import email
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from tool_helpers import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources (the build writes into the
    source tree)."""
    tmp = tmp_path_factory.mktemp('wheel')
    src = tmp / 'src'
    src.mkdir()
    for name in ('setup.py', 'README.md'):
        shutil.copy(ROOT / name, src)
    for name in ('mmregionvit', 'configs'):
        shutil.copytree(
            ROOT / name,
            src / name,
            symlinks=True,
            ignore=shutil.ignore_patterns('__pycache__'))
    subprocess.run([
        sys.executable, '-m', 'pip', 'wheel', '--no-deps',
        '--no-build-isolation', '--quiet', '-w',
        str(tmp / 'dist'),
        str(src)
    ],
                   check=True)
    (path, ) = (tmp / 'dist').glob('mmregionvit-*.whl')
    return path


def test_wheel_ships_every_config(wheel):
    configs = {
        str(p.relative_to(ROOT / 'configs'))
        for p in (ROOT / 'configs').rglob('*.py')
    }
    assert '_base_/regionvit.py' in configs
    prefix = 'mmregionvit/.mim/configs/'
    with zipfile.ZipFile(wheel) as z:
        shipped = {
            n[len(prefix):]
            for n in z.namelist() if n.startswith(prefix)
        }
    assert shipped == configs


def test_wheel_declares_what_the_code_needs(wheel):
    with zipfile.ZipFile(wheel) as z:
        (name, ) = [n for n in z.namelist() if n.endswith('/METADATA')]
        meta = email.message_from_bytes(z.read(name))
    # what tools/check_env.py accepts
    assert set(SpecifierSet(meta['Requires-Python'])) == \
        set(SpecifierSet('>=3.11,<3.12'))
    requires = meta.get_all('Requires-Dist')
    assert 'torch>=2.7' in requires and 'numpy>=2' in requires
    # requirements/runtime.txt pins setuptools>=77.0.3,<81
    assert 'setuptools<81' in requires


def test_installed_configs_inherit_as_package_scope(wheel, tmp_path):
    site = tmp_path / 'site'
    subprocess.run([
        sys.executable, '-m', 'pip', 'install', '--no-deps', '--quiet',
        '--target',
        str(site),
        str(wheel)
    ],
                   check=True)
    (tmp_path / 'mine.py').write_text(
        "_base_ = 'mmregionvit::detection/maskrcnn_regionvit_s_coco.py'\n"
        'model = dict(backbone=dict(drop_path_rate=0.1))\n')
    script = textwrap.dedent(f"""
        import mmregionvit
        from mmengine.config import Config
        assert mmregionvit.__file__.startswith({str(site)!r}), \\
            mmregionvit.__file__
        cfg = Config.fromfile('mine.py')
        print(cfg.model.backbone.type, cfg.model.backbone.arch,
              cfg.model.backbone.drop_path_rate)
        """)
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, '-c', script],
                         cwd=tmp_path,
                         env=env,
                         capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ['mmregionvit.RegionViT', 'small', '0.1']
