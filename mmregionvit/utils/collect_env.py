"""Report the installed stack and check that its parts work together."""
import importlib
import importlib.metadata as metadata
import platform
import sys
from typing import List, NamedTuple, Optional

_INSTALL_HINT = 'run `make install` (or `bash tools/install.sh`)'


class Check(NamedTuple):
    name: str
    detail: str
    ok: bool
    required: bool
    fix: Optional[str] = None


def _version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _package(dist: str, module: str, required: bool, want: str) -> Check:
    version = _version(dist)
    if version is None:
        return Check(dist, 'not installed', False, required,
                     f'{_INSTALL_HINT}; tested version {want}')
    try:
        importlib.import_module(module)
    except Exception as e:  # a broken install shows here, whatever it is
        return Check(dist, f'{version}, import fails: {e}', False, required,
                     f'reinstall it: {_INSTALL_HINT}')
    ok = version.startswith(want)
    return Check(dist, version, ok, required,
                 None if ok else f'tested with {want}: {_INSTALL_HINT}')


def _mmcv_ops() -> Check:
    try:
        import torch
        from mmcv.ops import RoIAlign, nms
        boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
        _, keep = nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
        RoIAlign((2, 2), 1.0, 0,
                 aligned=True)(torch.ones(1, 1, 4, 4),
                               torch.tensor([[0., 0., 0., 2., 2.]]))
        if keep.tolist() != [0]:
            raise RuntimeError(f'nms kept {keep.tolist()}, expected [0]')
    except Exception as e:
        return Check(
            'mmcv ops', f'unusable: {e}', False, True,
            'mmcv was built without ops or against another torch; '
            'rebuild: rm -rf .venv && make install')
    return Check('mmcv ops', 'compiled, nms and RoIAlign run on CPU', True,
                 True)


def check_environment() -> List[Check]:
    """All checks, required ones first."""
    checks = [
        Check('python', platform.python_version(),
              sys.version_info[:2] == (3, 11), True,
              'use Python 3.11 (PYTHON=python3.11 make install)'),
        _package('torch', 'torch', True, '2.14.1'),
        _package('torchvision', 'torchvision', True, '0.29.1'),
        _package('numpy', 'numpy', True, '2.'),
        _package('mmengine', 'mmengine', True, '0.10.7'),
        _package('mmcv', 'mmcv', True, '2.1.0'),
        _mmcv_ops(),
        _package('timm', 'timm', True, '1.0'),
        _package('mmregionvit', 'mmregionvit', True, ''),
        _package('mmdet', 'mmdet', False, '3.3.0'),
        _package('mmsegmentation', 'mmseg', False, '1.2.2'),
        _package('mmpose', 'mmpose', False, '1.3.2'),
        _package('pycocotools', 'pycocotools', False, '2.'),
        _package('xtcocotools', 'xtcocotools', False, '1.'),
        # ONNX export, onnxruntime and OpenVINO inference
        _package('onnx', 'onnx', False, '1.23.2'),
        _package('onnxruntime', 'onnxruntime', False, '1.31.1'),
        _package('onnxscript', 'onnxscript', False, '0.7.2'),
        _package('openvino', 'openvino', False, '2026.4'),
    ]
    return checks


def main() -> int:
    """Print the report; exit status 1 if a required part fails."""
    import torch
    checks = check_environment()
    width = max(len(c.name) for c in checks)
    cuda = torch.cuda.is_available()
    print(f'platform: {platform.platform()}; CUDA available: {cuda}; '
          f'torch threads: {torch.get_num_threads()}')
    for c in checks:
        mark = 'ok ' if c.ok else ('ERR' if c.required else 'opt')
        print(f'[{mark}] {c.name:<{width}}  {c.detail}')
        if not c.ok and c.fix:
            print(f'      {"":<{width}}  -> {c.fix}')
    failed = [c.name for c in checks if c.required and not c.ok]
    if failed:
        print(f'environment check FAILED: {", ".join(failed)}')
        return 1
    missing = [c.name for c in checks if not c.required and not c.ok]
    print('environment check passed' + (
        f' (optional parts missing: {", ".join(missing)})' if missing else ''))
    return 0
