"""Every config resolves, ``_base_`` files and all, to the settings recorded
in tests/data/resolved_configs.json.gz: laying the configs out differently
must not change what they mean.

The record was written from the configs as they were before their shared
parts moved into configs/_base_ fragments:
``PYTHONPATH=.:tests python -c 'import test_config_resolution as t;
t.write_record()'``. The layout introduced no type of its own (the larger
inputs rewrite the inherited pipelines' sizes in place) and one variable,
the table of RegionViT sizes (``SIZES``), which the configs inherit and
which is left out of the comparison; everything else resolves exactly as
recorded.
"""
import functools
import gzip
import json
from pathlib import Path

import mmengine.config.utils
import pytest
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / 'tests' / 'data' / 'resolved_configs.json.gz'
# every config a user runs (configs/_base_ holds fragments, not configs),
# and the tests' own configs, which inherit them
CONFIGS = sorted(
    p.relative_to(ROOT).as_posix()
    for pattern in ('configs/**/*.py', 'tests/configs/*.py')
    for p in ROOT.glob(pattern) if '_base_' not in p.parts)
# configs/_base_/regionvit.py's table that the configs of the other sizes
# read their backbone and channels from. Nothing that runs a config reads
# it (mmengine's Runner, mmdet/mmseg/mmpose and our tools read only keys
# they name, and it names no type to build), so a config with it left out
# runs as the recorded one did.
SIZES = 'regionvit_sizes'


def encode(value):
    """A config value as JSON that keeps tuples apart from lists."""
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {'<tuple>': [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, str):  # {{ fileDirname }}: the clone's own path
        return value.replace(str(ROOT), '<root>')
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise TypeError(f'{type(value).__name__} in a config: {value!r}')


def resolved(path: str) -> dict:
    return encode(Config.fromfile(ROOT / path).to_dict())


def resolved_settings(path: str) -> dict:
    """``resolved(path)`` without the table of sizes (if it inherits it)."""
    settings = resolved(path)
    settings.pop(SIZES, None)
    return settings


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, indent=0)


def write_record() -> None:
    text = canonical({p: resolved_settings(p) for p in CONFIGS})
    with gzip.GzipFile(RECORD, 'wb', mtime=0) as f:
        f.write(text.encode())


@pytest.fixture(scope='module', autouse=True)
def model_index_read_once():
    """mmengine reads every model-index file of mmdet/mmseg/mmpose for each
    ``package::`` base it resolves; they do not change during the tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mmengine.config.utils, 'load',
                      functools.lru_cache(mmengine.config.utils.load))
        yield


@pytest.fixture(scope='module')
def record() -> dict:
    with gzip.open(RECORD, 'rt') as f:
        return json.load(f)


def test_every_config_is_recorded(record):
    assert sorted(record) == CONFIGS


@pytest.mark.parametrize('path', CONFIGS)
def test_config_resolves_as_recorded(record, path):
    # as text, so that 1 and 1.0 or True differ
    assert canonical(resolved_settings(path)) == canonical(record[path])
