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
    # the Python that tools/check_env.py accepts (the tested stack)
    python_requires='>=3.11,<3.12',
    packages=find_packages(include=['mmregionvit', 'mmregionvit.*']),
    # the configs, as mmregionvit/.mim/configs (a link to configs/ here),
    # and the index mmengine reads first: an installed package's configs
    # are reachable as 'mmregionvit::detection/...' (see
    # mmregionvit/utils/config.py)
    package_data={
        'mmregionvit': ['.mim/configs/**/*.py', '.mim/model-index.yml']
    },
    install_requires=[
        # torch.library.custom_op (2.4), weights-only loading by default
        # (2.6), torch.compiler.is_exporting (2.7)
        'torch>=2.7',
        'numpy>=2',  # numpy._core
        'mmengine>=0.10.7,<1.0',
        'mmcv>=2.0.0,<2.2.0',
        'timm>=1.0,<2.0',
        # mmengine imports pkg_resources at run time, gone in setuptools 81
        'setuptools<81',
    ],
    extras_require={
        'det': ['mmdet>=3.3.0,<3.4', 'pycocotools'],
        'seg': ['mmsegmentation>=1.2.2,<1.3'],
        'pose':
        ['mmpose>=1.3.2,<1.4', 'xtcocotools', 'json_tricks', 'munkres'],
        # tools/export_onnx.py, tools/infer.py --backend onnxruntime or
        # openvino
        'deploy':
        ['onnx>=1.16', 'onnxruntime>=1.18', 'onnxscript', 'openvino>=2024.0'],
    },
    zip_safe=False,
)
