"""The tools silence the upstream messages that tell their users nothing,
and only those."""
import logging
import subprocess
import sys
import textwrap
import warnings

import pytest
from mmengine.logging import MMLogger, print_log
from tool_helpers import ROOT

from mmregionvit.utils.quiet import quiet_upstream_noise

# what the upstream code does in every tool: import pkg_resources, build a
# visualizer without a save_dir, look a function up in a library's scope;
# then a warning and a log message of mmengine's that must still show
EMIT = textwrap.dedent("""
    import warnings
    from mmengine.logging import print_log
    from mmengine.registry import FUNCTIONS
    from mmengine.utils import get_installed_path
    from mmengine.visualization import Visualizer
    get_installed_path('mmengine')
    Visualizer(vis_backends=[dict(type='LocalVisBackend')])
    with FUNCTIONS.switch_scope_and_registry('mmdet'):
        pass
    warnings.warn_explicit('still shown', UserWarning, 'visualizer.py', 1,
                           'mmengine.visualization.visualizer')
    print_log('Failed to search registry with scope "mmregionvit" in the '
              '"model" registry tree', logger='current', level=30)
""")
NOISE = ('pkg_resources is deprecated', 'Failed to add',
         'Failed to search registry with scope "mmdet"')


def output(quiet: bool) -> str:
    code = ('from mmregionvit.utils.quiet import quiet_upstream_noise\n'
            'quiet_upstream_noise()\n' if quiet else '') + EMIT
    run = subprocess.run([sys.executable, '-c', code],
                         cwd=ROOT,
                         capture_output=True,
                         text=True,
                         check=True)
    return run.stdout + run.stderr


@pytest.mark.slow
def test_upstream_noise_silenced_and_nothing_else():
    """Where the upstream code emits them."""
    loud = output(quiet=False)
    assert all(message in loud for message in NOISE)
    quiet = output(quiet=True)
    assert [message for message in NOISE if message in quiet] == []
    assert 'still shown' in quiet
    assert 'scope "mmregionvit"' in quiet


def test_filters_match_message_and_module():
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    filters = list(logger.filters)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            quiet_upstream_noise()
            for module in ('mmengine.utils.package_utils', 'mypackage'):
                warnings.warn_explicit(
                    'pkg_resources is deprecated as an API. See ...',
                    UserWarning, 'x.py', 1, module)
            warnings.warn_explicit(
                "Failed to add <class 'mmengine.visualization.vis_backend."
                "LocalVisBackend'>, please provide the `save_dir` argument.",
                UserWarning, 'visualizer.py', 1,
                'mmengine.visualization.visualizer')
            for scope in ('mmdet', 'mmregionvit'):
                print_log(
                    f'Failed to search registry with scope "{scope}" in '
                    'the "function" registry tree. As a workaround, ...',
                    logger='current',
                    level=logging.WARNING)
    finally:
        logger.removeHandler(handler)
        logger.filters[:] = filters
    assert [(str(w.message), w.filename) for w in caught
            ] == [('pkg_resources is deprecated as an API. See ...', 'x.py')]
    assert [r.getMessage() for r in records] == [
        'Failed to search registry with scope "mmregionvit" in the '
        '"function" registry tree. As a workaround, ...'
    ]
