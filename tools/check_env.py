"""Print the environment and check it: versions, mmcv's compiled ops, and
which optional parts (mmdet, mmseg, mmpose) are present.

Loads the checker by path so that it reports even when mmengine or the
package itself cannot be imported.
"""
import importlib.util
import sys
from pathlib import Path

path = Path(__file__).resolve().parents[1] / 'mmregionvit/utils/collect_env.py'
spec = importlib.util.spec_from_file_location('collect_env', path)
collect_env = importlib.util.module_from_spec(spec)
spec.loader.exec_module(collect_env)

if __name__ == '__main__':
    sys.exit(collect_env.main())
