"""Install mmregionvit (``pip install -e .``); tools/install.sh sets up the
whole stack, mmcv's compiled ops included."""
import os.path as osp
from setuptools import find_packages, setup


def read_version() -> str:
    scope: dict = {}
    with open(osp.join('mmregionvit', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmregionvit',
    version=read_version(),
    description='RegionViT backbones for mmdet, mmsegmentation and mmpose',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=['mmregionvit', 'mmregionvit.*']),
    # configs are reachable as 'mmregionvit::detection/...' (mmengine looks
    # in <package>/.mim/configs)
    package_data={'mmregionvit': ['.mim/configs/*/*.py']},
    include_package_data=True,
    install_requires=[
        'torch>=2.1',
        'numpy>=1.24',
        'mmengine>=0.10.7,<1.0',
        'mmcv>=2.0.0,<2.2.0',
        'timm>=1.0,<2.0',
        'setuptools<70',
    ],
    extras_require={
        'det': ['mmdet>=3.3.0,<3.4', 'pycocotools'],
        'seg': ['mmsegmentation>=1.2.2,<1.3'],
        'pose':
        ['mmpose>=1.3.2,<1.4', 'xtcocotools', 'json_tricks', 'munkres'],
    },
    zip_safe=False,
)
