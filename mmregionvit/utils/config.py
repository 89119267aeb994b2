"""Loading a config for the tools, whichever library it belongs to."""
import importlib
import os.path as osp
from typing import Optional

from mmengine.config import Config

# default_scope of a config -> the package that provides it
LIBRARIES = {'mmdet': 'mmdet', 'mmseg': 'mmsegmentation', 'mmpose': 'mmpose'}


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
    cfg = Config.fromfile(path)
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
