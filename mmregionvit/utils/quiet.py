"""Upstream messages that tell a user of the tools nothing, silenced one by
one (by message and the module that emits it); everything else still
shows."""
import logging
import re
import warnings

# (message, module) of Python warnings, as regular expressions
WARNINGS = [
    # setuptools, each time mmengine imports pkg_resources
    (r'pkg_resources is deprecated as an API', r'(mmengine\..*|importlib)$'),
    # inferencers build a visualizer without a save_dir; the tools save
    # pictures themselves
    (r"Failed to add <class 'mmengine\.visualization\.vis_backend\."
     r"LocalVisBackend'>", r'mmengine\.visualization\.visualizer$'),
    # tools/infer.py builds an inferencer without weights for an exported
    # file only, and then gives it the config's classes
    (r'(weights is None, use \w+ classes by default|Checkpoint is not '
     r'loaded)', r'(mmdet|mmseg|mmengine\.infer)\..*'),
]
# mmengine's inferencers look their collate function up in a scope that
# mmdet, mmseg and mmpose have no function registry for, fall back to
# mmengine's (the right one) and log this
REGISTRY_FALLBACK = re.compile(r'Failed to search registry with scope '
                               r'"(mmdet|mmseg|mmpose)" in the "function" '
                               r'registry tree')


class _RegistryFallback(logging.Filter):

    def filter(self, record: logging.LogRecord) -> bool:
        return not REGISTRY_FALLBACK.match(record.getMessage())


def quiet_upstream_noise() -> None:
    """Silence the messages above in this process (the tools call it
    first); mmengine's log messages in its current logger."""
    from mmengine.logging import MMLogger
    for message, module in WARNINGS:
        warnings.filterwarnings('ignore', message, UserWarning, module)
    logger = MMLogger.get_current_instance()
    if not any(isinstance(f, _RegistryFallback) for f in logger.filters):
        logger.addFilter(_RegistryFallback())
