"""The README and the docs pages: the README's order, links that lead
somewhere, figures that agree with the code they describe, and the Layout
listing every module."""
import re
import subprocess

from tool_helpers import ROOT, load_tool

README = ROOT / 'README.md'
DOCS = ROOT / 'docs'
# where the Layout section lives
LAYOUT_PAGE = DOCS / 'development.md'


def pages():
    return [README, *sorted(DOCS.glob('*.md'))]


def anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    slug = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return slug.replace(' ', '-')


def test_readme_sections_in_order():
    """The README's top-level sections come in this order (other sections
    may sit between them)."""
    wanted = [
        'Introduction', 'Installation', 'Quick start', 'Data preparation',
        'Model zoo', 'Documentation', 'Citation', 'License'
    ]
    found = re.findall(r'^## (.+?)\s*$', README.read_text(), re.M)
    assert [h for h in found if h in wanted] == wanted


def test_gpu_status_up_front():
    intro = README.read_text().split('## Installation')[0]
    assert 'have not been run on a GPU yet' in intro


def test_links_lead_somewhere():
    """Every relative link of the README and the docs names a file that
    exists, and a heading of it where it names one."""
    broken = []
    for page in pages():
        for target in re.findall(r'\]\(([^)\s]+)\)', page.read_text()):
            if re.match(r'[a-z]+://', target):
                continue
            path, _, fragment = target.partition('#')
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f'{page.name}: {target}')
            elif fragment and fragment not in {
                    anchor(h)
                    for h in re.findall(r'^#+ (.+)$', file.read_text(), re.M)
            }:
                broken.append(f'{page.name}: {target} (no such heading)')
    assert broken == []


def test_readme_links_every_docs_page():
    readme = README.read_text()
    assert [
        p.name for p in DOCS.glob('*.md') if f'](docs/{p.name}' not in readme
    ] == []


def test_pages_with_commands_say_which_python():
    """Each page whose commands call ``python`` says that it is the
    virtual environment's."""
    silent = [
        page.name for page in pages()
        if re.search(r'^(\$ )?python tools/', page.read_text(), re.M)
        and '.venv/bin/python' not in page.read_text()
    ]
    assert silent == []


def test_mmcv_build_time_as_the_installer_says():
    minutes = r'about (\d+) minutes on 2 cores'
    (install, ) = re.findall(minutes, (ROOT / 'tools/install.sh').read_text())
    assert re.findall(minutes, README.read_text()) == [install]


def test_demo_targets_as_the_demo_checks_them():
    targets = load_tool('demo').TASKS['det']['targets']
    said = re.search(r'Below its targets \(([\d.]+) and ([\d.]+)\)',
                     README.read_text(), re.S)
    said = [float(v) for v in said.groups()]
    assert said == [targets['bbox mAP'], targets['mask mAP']]


def test_license_is_the_declared_one():
    text = (ROOT / 'LICENSE').read_text()
    assert text.split()[:4] == ['Apache', 'License', 'Version', '2.0,']
    assert "license='Apache-2.0'" in (ROOT / 'setup.py').read_text()


def test_make_shell_activates_the_environment(tmp_path):
    """``make shell`` gives a shell whose ``python`` is the environment's,
    also after a ~/.bashrc that puts something else first on PATH."""
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    (venv / 'bin' / 'python').write_text('#!/bin/sh\n')
    (venv / 'bin' / 'python').chmod(0o755)
    (venv / 'bin' / 'activate').write_text(
        f'export VIRTUAL_ENV={venv}\nexport PATH="$VIRTUAL_ENV/bin:$PATH"\n')
    (venv / '.installed').touch()  # newer than the sources: no install
    home = tmp_path / 'home'
    (home / 'other').mkdir(parents=True)
    (home / 'other' / 'python').write_text('#!/bin/sh\n')
    (home / 'other' / 'python').chmod(0o755)
    (home / '.bashrc').write_text(f'export PATH={home}/other:$PATH\n')
    out = subprocess.run(['make', '-s', 'shell', f'VENV={venv}'],
                         cwd=ROOT,
                         input='command -v python\n',
                         capture_output=True,
                         text=True,
                         env={
                             'HOME': str(home),
                             'PATH': '/usr/bin:/bin'
                         },
                         check=True).stdout
    assert out.splitlines()[-1] == str(venv / 'bin' / 'python')


def test_layout_lists_every_module():
    text = LAYOUT_PAGE.read_text()
    layout = re.search(r'^## Layout\n(.*?)(^## |\Z)', text,
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
