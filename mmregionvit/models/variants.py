"""The official RegionViT variants: the one table of them.

Everything that differs between variants lives in :data:`VARIANTS`: the
architecture (in the official constructor's argument names), the parameter
count of the official ImageNet classifier, the release file of its ImageNet
weights and the window size those weights were trained with. The ``w14``
variants are their base with 14x14 windows (``peg``: with a positional
encoding generator); they start from the base's ImageNet weights, which
loading converts to the larger window as the official tool does.
"""
from dataclasses import dataclass, field, replace
from typing import Dict, Optional, Union

RELEASE_URL = ('https://github.com/IBM/RegionViT/releases/download/'
               'weights-v0.1/')

# Architecture settings every official variant shares.
ARCH_DEFAULTS = dict(
    patch_size=4,
    mlp_ratio=4.0,
    peg=False,
    patch_conv_type='3conv',
    downsampling=['c', 'sc', 'sc', 'sc'])
# Arguments of the official constructor that are not architecture: accepted
# in a custom arch dict (it can be the official kwargs as they are) when they
# say nothing our backbone would have to follow.
_NON_ARCH_KEYS = ('img_size', )


@dataclass(frozen=True)
class Variant:
    """One official variant.

    Args:
        arch: The official constructor's architecture arguments.
        abbrev: Its short name in config file names (``s-w14-peg``).
        params: Parameters of the official ImageNet classifier (1000
            classes, no detection norms).
        weights: File name of its ImageNet weights in the official release.
        train_window: Window size those weights were trained with.
        top1: Official ImageNet top-1 accuracy (%) of ``weights``; None for
            the variants released for detection only.
        coco_params: Parameters (millions) of the official COCO detectors
            with this backbone (``maskrcnn``, ``retinanet``), if released.
    """
    arch: dict = field(repr=False)
    abbrev: str
    params: int
    weights: str
    train_window: int = 7
    top1: Optional[float] = None
    coco_params: Dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Download URL of the ImageNet weights."""
        return RELEASE_URL + self.weights

    @property
    def window(self) -> int:
        return self.arch['kernel_sizes'][0]


def _variant(embed_dim, depth, num_heads, patch_conv_type, **kwargs):
    arch = dict(
        ARCH_DEFAULTS,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        kernel_sizes=[7] * 4,
        patch_conv_type=patch_conv_type)
    return Variant(arch=arch, **kwargs)


def _w14(base: Variant, peg: bool = False, **kwargs) -> Variant:
    """``base`` with 14x14 windows (and PEG), starting from its weights."""
    arch = dict(base.arch, kernel_sizes=[14] * 4, peg=peg)
    abbrev = base.abbrev + ('-w14-peg' if peg else '-w14')
    return replace(base, arch=arch, abbrev=abbrev, top1=None, **kwargs)


_TINY = _variant([64, 64, 128, 256, 512], [2, 2, 8, 2], [2, 4, 8, 16],
                 '3conv',
                 abbrev='t',
                 params=13_842_676,
                 weights='RegionViT-Ti.pth',
                 top1=80.4)
_SMALL = _variant([96, 96, 192, 384, 768], [2, 2, 8, 2], [3, 6, 12, 24],
                  '3conv',
                  abbrev='s',
                  params=30_586_618,
                  weights='RegionViT-S.pth',
                  top1=82.6,
                  coco_params=dict(maskrcnn=50.1, retinanet=40.8))
_MEDIUM = _variant([96, 96, 192, 384, 768], [2, 2, 14, 2], [3, 6, 12, 24],
                   '1conv',
                   abbrev='m',
                   params=41_215_906,
                   weights='RegionViT-M.pth',
                   top1=83.1)
_BASE = _variant([128, 128, 256, 512, 1024], [2, 2, 14, 2], [4, 8, 16, 32],
                 '1conv',
                 abbrev='b',
                 params=72_747_232,
                 weights='RegionViT-B.pth',
                 top1=83.2,
                 coco_params=dict(maskrcnn=92.2, retinanet=83.4))

VARIANTS: Dict[str, Variant] = dict(
    tiny=_TINY,
    small=_SMALL,
    medium=_MEDIUM,
    base=_BASE,
    small_w14=_w14(
        _SMALL,
        params=31_354_714,
        coco_params=dict(maskrcnn=50.9, retinanet=41.5)),
    small_w14_peg=_w14(
        _SMALL,
        peg=True,
        params=31_367_674,
        coco_params=dict(maskrcnn=50.9, retinanet=41.6)),
    base_w14=_w14(
        _BASE,
        params=73_825_120,
        coco_params=dict(maskrcnn=93.2, retinanet=84.4)),
    base_w14_peg=_w14(
        _BASE,
        peg=True,
        params=73_842_400,
        coco_params=dict(maskrcnn=93.2, retinanet=84.5)),
)


def resolve_arch(arch: Union[str, dict]) -> dict:
    """The full architecture dict of a variant name or a custom dict in the
    official constructor's names."""
    if isinstance(arch, str):
        if arch not in VARIANTS:
            raise KeyError(f'Unknown RegionViT arch {arch!r}; choose one of '
                           f'{sorted(VARIANTS)} or pass a dict.')
        return dict(VARIANTS[arch].arch)
    for key, where in (('det_norm', 'RegionViT(det_norm=...)'),
                       ('num_classes', 'the classifier (num_classes=...)')):
        if key in arch:
            raise KeyError(f'{key!r} is not part of a RegionViT arch; pass '
                           f'it to {where} instead.')
    arch = {k: v for k, v in arch.items() if k not in _NON_ARCH_KEYS}
    allowed = set(_TINY.arch)
    unknown = sorted(set(arch) - allowed)
    if unknown:
        raise KeyError(f'Unknown RegionViT arch keys {unknown}; allowed: '
                       f'{sorted(allowed)}.')
    required = ('embed_dim', 'num_heads', 'depth', 'kernel_sizes')
    missing = [k for k in required if k not in arch]
    if missing:
        raise KeyError(f'Custom RegionViT arch lacks {missing}.')
    cfg = {**ARCH_DEFAULTS, **arch}
    num_stages = len(cfg['depth'])
    if len(cfg['embed_dim']) != num_stages + 1:
        raise ValueError('arch embed_dim needs one entry more than depth '
                         '(the patch embedding width first), got '
                         f"{cfg['embed_dim']} for depth {cfg['depth']}.")
    for key in ('num_heads', 'kernel_sizes', 'downsampling'):
        if len(cfg[key]) != num_stages:
            raise ValueError(f'arch {key} needs {num_stages} entries, got '
                             f'{cfg[key]}.')
    return cfg
