"""The README's Layout section names every module of the package."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_layout_lists_every_module():
    readme = (ROOT / 'README.md').read_text()
    layout = re.search(r'^## Layout\n(.*?)(^## |\Z)', readme,
                       re.M | re.S).group(1)
    listed = set(re.findall(r'^(mmregionvit/\S+)', layout, re.M))
    modules = {
        str(p.relative_to(ROOT))
        for p in (ROOT / 'mmregionvit').rglob('*.py')
        if p.name not in ('__init__.py',
                          'version.py') and '.mim' not in p.parts
    }
    assert modules - listed == set()
    assert {p for p in listed if not (ROOT / p).exists()} == set()
