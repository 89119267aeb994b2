"""The official RegionViT classifiers in timm, under the official names.

``import mmregionvit`` registers ``regionvit_{variant}_224`` for every entry
of ``VARIANTS``, each with the official evaluation preprocessing (resize the
shorter side to 256 bicubic, centre crop 224, ImageNet mean and std) and
the URL of its official ImageNet weights::

    model = timm.create_model('regionvit_small_224', pretrained=True,
                              pretrained_cfg_overlay=dict(file='RegionViT-S.pth'))

Extra keyword arguments go to :class:`RegionViTClassifier` (``arch=`` a
custom dict, ``num_classes``, ``det_norm``, ``drop_path_rate``, ``fused``);
``features_only=True`` gives the stage maps.
"""
import json
import os.path as osp
from typing import Dict, Optional

import timm
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import (build_model_with_cfg, generate_default_cfgs,
                         load_state_dict, register_model)
from torch import Tensor

from .checkpoint import (CheckpointMismatchError, checkpoint_filter_fn,
                         fit_state_dict)
from .classifier import RegionViTClassifier
from .variants import VARIANTS, Variant, resolve_arch

PAPER = 'RegionViT: Regional-to-Local Attention for Vision Transformers'


def model_name(variant: str) -> str:
    """timm's (and the official code's) name of a ``VARIANTS`` entry."""
    return f'regionvit_{variant}_224'


def _input_convs(arch: dict) -> tuple:
    stem = 'backbone.patch_embed.proj'
    if arch['patch_conv_type'] == '3conv':
        stem += '.0'
    return stem, 'backbone.regional_embed'


def _cfg(variant: Variant) -> dict:
    cfg = dict(
        url=variant.url,
        num_classes=1000,
        input_size=(3, 224, 224),
        pool_size=None,
        # the official evaluation: Resize(256, bicubic), CenterCrop(224)
        crop_pct=224 / 256,
        interpolation='bicubic',
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        first_conv=_input_convs(variant.arch),
        classifier='head',
        license='apache-2.0',
        origin_url='https://github.com/IBM/RegionViT',
        paper_name=PAPER,
        paper_ids='arXiv:2106.02689')
    if variant.window != variant.train_window:
        cfg['notes'] = (
            f'{variant.weights} was trained with {variant.train_window}x'
            f'{variant.train_window} windows; loading converts it to '
            f'{variant.window}x{variant.window} (bicubic, as the official '
            'tool does) and starts any PEG at zero.', )
    return cfg


def _tag(variant: Variant) -> str:
    if variant.window == variant.train_window:
        return 'in1k'
    return f'in1k_w{variant.train_window}'


default_cfgs = generate_default_cfgs({
    f'{model_name(name)}.{_tag(v)}': _cfg(v)
    for name, v in VARIANTS.items()
})


def filter_pretrained(state_dict: Dict[str, Tensor],
                      model: RegionViTClassifier) -> Dict[str, Tensor]:
    """An official (or our own) checkpoint in the classifier's names.

    Mapped by ``checkpoint_filter_fn`` (window conversion included), then
    checked by ``fit_state_dict``, which also fills the parts a checkpoint
    lacks as a whole. The head is left to timm (dropped when
    ``num_classes`` differs), as are input convs of other channel counts.
    """
    arch = model.backbone.arch
    mapped = checkpoint_filter_fn(
        state_dict, arch['kernel_sizes'], arch['patch_size'], classifier=True)
    mapped = {
        k if k.startswith(('norm.', 'head.')) else f'backbone.{k}': v
        for k, v in mapped.items()
    }
    exempt = ['head.weight', 'head.bias']
    if model.in_chans != 3:
        exempt += [f'{conv}.weight' for conv in _input_convs(arch)]
    cfg = getattr(model, 'pretrained_cfg', {})
    source = cfg.get('file') or cfg.get('url') or 'the pretrained weights'
    target = cfg.get('architecture', type(model).__name__)
    variant = VARIANTS.get(target[len('regionvit_'):-len('_224')])
    if variant is None or arch != variant.arch:
        target += f' (arch={arch})'
    return fit_state_dict(mapped, model.state_dict(), source, target, exempt)


def _create(name: str, pretrained: bool, **kwargs) -> RegionViTClassifier:
    kwargs.setdefault('arch', name[len('regionvit_'):-len('_224')])
    num_stages = len(resolve_arch(kwargs['arch'])['depth'])
    out_indices = kwargs.pop('out_indices', tuple(range(num_stages)))
    return build_model_with_cfg(
        RegionViTClassifier,
        name,
        pretrained,
        pretrained_filter_fn=filter_pretrained,
        feature_cfg=dict(out_indices=out_indices, feature_cls='getter'),
        **kwargs)


@register_model
def regionvit_tiny_224(pretrained=False, **kwargs) -> RegionViTClassifier:
    return _create('regionvit_tiny_224', pretrained, **kwargs)


@register_model
def regionvit_small_224(pretrained=False, **kwargs) -> RegionViTClassifier:
    return _create('regionvit_small_224', pretrained, **kwargs)


@register_model
def regionvit_small_w14_224(pretrained=False, **kwargs) -> RegionViTClassifier:
    return _create('regionvit_small_w14_224', pretrained, **kwargs)


@register_model
def regionvit_small_w14_peg_224(pretrained=False,
                                **kwargs) -> RegionViTClassifier:
    return _create('regionvit_small_w14_peg_224', pretrained, **kwargs)


@register_model
def regionvit_medium_224(pretrained=False, **kwargs) -> RegionViTClassifier:
    return _create('regionvit_medium_224', pretrained, **kwargs)


@register_model
def regionvit_base_224(pretrained=False, **kwargs) -> RegionViTClassifier:
    return _create('regionvit_base_224', pretrained, **kwargs)


@register_model
def regionvit_base_w14_224(pretrained=False, **kwargs) -> RegionViTClassifier:
    return _create('regionvit_base_w14_224', pretrained, **kwargs)


@register_model
def regionvit_base_w14_peg_224(pretrained=False,
                               **kwargs) -> RegionViTClassifier:
    return _create('regionvit_base_w14_peg_224', pretrained, **kwargs)


def create_classifier(name: str,
                      checkpoint: Optional[str] = None,
                      arch: Optional[str] = None) -> RegionViTClassifier:
    """A registered classifier in eval mode, as the tools take one.

    Args:
        name: A timm name, ``regionvit_{variant}_224``.
        checkpoint: A weights file (its head gives the classes); None
            downloads the model's release file.
        arch: A custom architecture as JSON, in the official names.

    Raises:
        FileNotFoundError, ValueError: one line naming what is wrong.
    """
    names = [model_name(v) for v in VARIANTS]
    if name not in names:
        raise ValueError(f'unknown model {name!r}; choose one of ' +
                         ', '.join(names))
    kwargs, overlay = {}, {}
    if arch:
        try:
            kwargs['arch'] = json.loads(arch)
        except json.JSONDecodeError as e:
            raise ValueError(f'--arch is not valid JSON ({e})') from None
    if checkpoint:
        classes = checkpoint_classes(checkpoint)
        kwargs['num_classes'] = overlay['num_classes'] = classes
        overlay['file'] = checkpoint
    try:
        model = timm.create_model(
            name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    except CheckpointMismatchError as e:
        raise ValueError(f'{e.summary} Check --model and --arch.') from None
    return model.eval()


def checkpoint_classes(path: str) -> int:
    """The number of classes of a checkpoint's head."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'--checkpoint {path} not found')
    state_dict = checkpoint_filter_fn(load_state_dict(path), classifier=True)
    if 'head.weight' not in state_dict:
        raise ValueError(f'{path} has no classifier head (head.weight); '
                         'is it a RegionViT ImageNet checkpoint?')
    return len(state_dict['head.weight'])
