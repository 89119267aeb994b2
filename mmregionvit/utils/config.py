"""Loading a config for the tools, whichever library it belongs to."""
import importlib
import os.path as osp
import re
from typing import Optional, Tuple

from mmengine.config import Config

# default_scope of a config -> the package that provides it
LIBRARIES = {'mmdet': 'mmdet', 'mmseg': 'mmsegmentation', 'mmpose': 'mmpose'}
# the input size (H, W) the tools measure and export a task's model at
# unless told otherwise: the official detectors' FIXED size, the ADE20K
# crop, the COCO keypoint crop
INPUT_SIZES = {'mmdet': (672, 1120), 'mmseg': (512, 512), 'mmpose': (256, 192)}


def register_config_package() -> None:
    """Let configs inherit ours as ``_base_ = 'mmregionvit::detection/...'``.

    mmengine resolves ``package::path`` in an installed package's
    ``.mim/configs`` (``setup.py`` ships ours there), for the packages it
    lists; this lists ``mmregionvit``. It takes effect once mmregionvit is
    imported (the tools import it first), and only for an installed package:
    an editable install leaves mmengine looking in site-packages.
    """
    from mmengine.config.utils import MODULE2PACKAGE
    MODULE2PACKAGE.setdefault('mmregionvit', 'mmregionvit')


def default_input_size(scope: str) -> Tuple[int, int]:
    """The input size (H, W) of a config's task (its ``default_scope``)."""
    if scope not in INPUT_SIZES:
        raise ValueError(f'no default input size for {scope} configs (only '
                         f'for {", ".join(INPUT_SIZES)}); give one')
    return INPUT_SIZES[scope]


def read_config(path: str) -> Config:
    """``Config.fromfile``, with one line saying what to do when the file
    inherits ``mmregionvit::`` configs that mmengine cannot find (an
    editable install)."""
    try:
        return Config.fromfile(path)
    except FileNotFoundError as e:
        raise _package_config_error(path, e) or e


def _package_config_error(path: str,
                          error: Exception) -> Optional[FileNotFoundError]:
    """The error to raise instead of ``error`` when mmengine looked for
    ``mmregionvit::`` configs where the installed package has none."""
    from mmengine.config import config as mmengine_config
    installed = mmengine_config.get_installed_path('mmregionvit')
    if osp.join(installed, '.mim') not in str(error) or osp.isdir(
            osp.join(installed, '.mim', 'configs')):
        return None
    here = osp.realpath(
        osp.join(osp.dirname(osp.dirname(__file__)), '.mim', 'configs'))
    with open(path) as f:
        named = re.search(r'mmregionvit::([\w./-]+)', f.read())
    example = osp.join(here, named.group(1) if named else 'detection/...')
    return FileNotFoundError(
        f"{path} inherits an 'mmregionvit::' config, which mmengine finds "
        f'only in a non-editable install (pip install .), not in this one '
        f"({installed} has none): inherit by file path, e.g. _base_ = "
        f"'{example}'")


def dataset_metainfo(cfg: Config) -> dict:
    """The metainfo (class names, palette, keypoints and skeleton) of the
    config's test dataset, without reading its annotations."""
    import copy

    from mmengine.registry import DATASETS, init_default_scope
    init_default_scope(cfg.default_scope)
    dataset = copy.deepcopy(cfg.test_dataloader.dataset)
    dataset['lazy_init'] = True
    return dict(DATASETS.build(dataset).metainfo)


def load_config(path: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """Read ``path``, apply ``--cfg-options`` and set the work dir.

    Raises a clear error when the file is missing or its library (the
    config's ``default_scope``) is not installed.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {path} does not exist; the configs '
                                'are under configs/detection, '
                                'configs/segmentation and configs/keypoint.')
    cfg = read_config(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope')
    if scope not in LIBRARIES:
        raise ValueError(f'{path} has default_scope={scope!r}; the tools run '
                         f'configs of {sorted(LIBRARIES)}.')
    try:
        importlib.import_module(scope)
    except ImportError as e:
        raise ImportError(f'{path} is an {scope} config but {scope} cannot be '
                          f'imported ({e}); run `make install`.') from e
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs',
                                osp.splitext(osp.basename(path))[0])
    return cfg
