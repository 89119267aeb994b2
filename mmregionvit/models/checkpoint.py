"""Loading official RegionViT checkpoints into :class:`RegionViT`.

``checkpoint_filter_fn`` is the one place that maps the official parameter
names and layouts to ours; ``fit_state_dict`` completes and checks the
result; ``load_pretrained`` is what ``init_cfg`` Pretrained goes through.
"""
import math
import re
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor

from ..utils.checkpoint_safety import CheckpointFileError, load_checkpoint_file

StateDict = Dict[str, Tensor]
# Prefixes under which a backbone's weights are found in known files.
_PREFIXES = ('backbone.bottom_up.model.', 'module.', 'backbone.')
# Official names -> ours (applied in order, first match wins).
_RENAMES = (
    (r'^cls_token\.proj\.', 'regional_embed.'),
    (r'^layers\.(\d+)\.block\.0\.proj\.', r'stages.\1.downsample.'),
    (r'^layers\.(\d+)\.peg\.', r'stages.\1.peg.'),
    (r'^norm(\d+)\.', r'stages.\1.out_norm.'),
)
_BLOCK = re.compile(r'^layers\.(\d+)\.block\.(\d+)\.(.*)$')
# The classifier's final norm and head: the same names officially and here.
_CLASSIFIER = re.compile(r'^(norm|head)\.(weight|bias)$')
_BLOCK_PARTS = {
    'norm0.': 'regional_norm.',
    'norm1.': 'local_norm.',
    'norm2.': 'mlp_norm.'
}


class CheckpointMismatchError(KeyError):
    """A checkpoint whose keys or shapes do not fit the model.

    ``summary`` says it in one line (by default the message's first);
    ``str()`` is the whole message.
    """

    def __init__(self, message: str, summary: Optional[str] = None) -> None:
        super().__init__(message)
        self.summary = summary or message.split('\n')[0]

    def __str__(self) -> str:
        return str(self.args[0])


def extract_state_dict(checkpoint: dict,
                       filename: str = 'the checkpoint') -> Dict[str, Tensor]:
    """The state dict inside a loaded checkpoint file, whatever its wrapper;
    ``filename`` names the file when it holds none."""
    state_dict = checkpoint
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            state_dict = checkpoint[key]
            break
    for key, value in state_dict.items():
        if not isinstance(value, Tensor):
            raise CheckpointFileError(
                f'{filename} holds no state dict of weights ({key!r} is a '
                f'{type(value).__name__}, not a tensor)')
    return state_dict


def read_state_dict(filename: str, mmap: bool = False) -> Dict[str, Tensor]:
    """The state dict in a local checkpoint file; ``CheckpointFileError``
    (one line naming the file) when it holds none. ``mmap``: map the
    tensors instead of reading them."""
    return extract_state_dict(
        load_checkpoint_file(filename, mmap=mmap), filename)


def _strip_prefix(state_dict: Dict[str, Tensor],
                  classifier: bool) -> Dict[str, Tensor]:
    """The keys under the first known prefix found, without it; with
    ``classifier``, also the final norm and head next to that prefix (the
    layout of our classifier, whose backbone is under ``backbone.``)."""
    for prefix in _PREFIXES:
        if any(k.startswith(prefix) for k in state_dict):
            out = {
                k[len(prefix):]: v
                for k, v in state_dict.items() if k.startswith(prefix)
            }
            if classifier:
                out.update((k, v) for k, v in state_dict.items()
                           if _CLASSIFIER.match(k))
            return out
    return dict(state_dict)


def _rename_official(key: str) -> Optional[str]:
    """Our name of an official key, or None for keys we do not keep."""
    if key.startswith(('head.', 'norm.')) or '.proj_cls.' in key:
        return None
    m = _BLOCK.match(key)
    if m and m.group(2) != '0':
        stage, block, rest = m.groups()
        for old, new in _BLOCK_PARTS.items():
            if rest.startswith(old):
                rest = new + rest[len(old):]
        return f'stages.{stage}.blocks.{int(block) - 1}.{rest}'
    for pattern, repl in _RENAMES:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    return key


def _resize_rel_pos(table: Tensor, window: int) -> Tensor:
    side = int(math.isqrt(table.shape[1]))
    grid = table.reshape(1, table.shape[0], side, side)
    size = 2 * window - 1
    return F.interpolate(grid, size=(size, size), mode='bicubic').flatten(2)[0]


def checkpoint_filter_fn(state_dict: Dict[str, Tensor],
                         window_sizes: Optional[Sequence[int]] = None,
                         patch_size: int = 4,
                         classifier: bool = False) -> Dict[str, Tensor]:
    """Map an official (or our own) RegionViT state dict to our names.

    Accepts official classification and detectron2 layouts, our own layout
    and checkpoints of whole models (``backbone.`` prefix). Drops the
    classifier's final norm and head, or with ``classifier`` keeps them
    (``norm.*``, ``head.*``, next to the backbone's keys). With
    ``window_sizes`` (one per stage), a checkpoint trained with other
    windows is converted as the official tool does: bicubic resize of the
    regional embedding kernel and of each relative-position table.
    """
    state_dict = _strip_prefix(state_dict, classifier)
    official = any(k.startswith(('layers.', 'cls_token.')) for k in state_dict)
    out = {}
    for key, value in state_dict.items():
        if _CLASSIFIER.match(key):
            if classifier:
                out[key] = value
            continue
        if official:
            proj, cls = key, key.replace('.proj.', '.proj_cls.', 1)
            if '.block.0.proj.' in key and cls in state_dict and \
                    not torch.equal(state_dict[cls], value):
                raise ValueError(f'{cls} differs from {proj}; the official '
                                 'model shares them.')
            key = _rename_official(key)
            if key is None:
                continue
            if value.dim() == 4 and value.shape[0] == 1 and \
                    value.shape[2:] == (1, 1):
                value = value.flatten()  # official LayerNorm2d parameters
        elif key.startswith(('head.', 'norm.')):
            continue
        out[key] = value
    if window_sizes is not None:
        _convert_windows(out, list(window_sizes), patch_size)
    return out


def _convert_windows(state_dict: Dict[str, Tensor], window_sizes: list,
                     patch_size: int) -> None:
    kernel = state_dict.get('regional_embed.weight')
    region = patch_size * window_sizes[0]
    if kernel is not None and kernel.shape[-1] != region:
        print_log(
            f'Converting the regional embedding kernel from '
            f'{kernel.shape[-1]}x{kernel.shape[-1]} to {region}x{region}'
            ' (window size change)',
            logger='current')
        state_dict['regional_embed.weight'] = F.interpolate(
            kernel, size=(region, region), mode='bicubic')
    for key, table in list(state_dict.items()):
        m = re.match(r'^stages\.(\d+)\.blocks\.\d+\.attn\.rel_pos$', key)
        if not m or int(m.group(1)) >= len(window_sizes):
            continue
        window = window_sizes[int(m.group(1))]
        if table.shape[1] != (2 * window - 1)**2:
            side = int(math.isqrt(table.shape[1]))
            print_log(
                f'Converting {key} from a {side}x{side} table to '
                f'window {window} (window size change)',
                logger='current')
            state_dict[key] = _resize_rel_pos(table, window)


def fit_state_dict(state_dict: StateDict,
                   own: StateDict,
                   source: str,
                   target: str,
                   exempt: Sequence[str] = ()) -> StateDict:
    """``state_dict`` (in our names) checked against a model's ``own``.

    Missing, unexpected or mis-shaped keys raise an error listing them.
    The tolerated gaps are whole parts the checkpoint's model did not have:
    the detection norms (kept at the model's values) and the PEG convs (set
    to zero, which makes each PEG an identity). Keys in ``exempt`` are left
    out of the checks (and out of the result if the model lacks them).
    """
    state_dict = dict(state_dict)
    missing = sorted(set(own) - set(state_dict) - set(exempt))
    unexpected = sorted(set(state_dict) - set(own) - set(exempt))
    mismatched = sorted(
        f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model '
        f'{tuple(own[k].shape)}'
        for k in set(own) & set(state_dict) - set(exempt)
        if state_dict[k].shape != own[k].shape)
    # Parts a checkpoint may lack as a whole: detection norms (classification
    # weights) and PEG convs (weights of a model trained without PEG).
    for part, fill, note in (('.out_norm.', None, 'keep ones and zeros'),
                             ('.peg.', 0.0, 'start from zero (each PEG adds '
                              'nothing at first)')):
        absent = [k for k in missing if part in k]
        if absent and not any(part in k for k in state_dict):
            for k in absent:
                state_dict[k] = own[k] if fill is None else \
                    torch.full_like(own[k], fill)
            print_log(
                f'{source} has no {part.strip(".")} weights; they '
                f'{note}.',
                logger='current')
            missing = [k for k in missing if k not in absent]
    if missing or unexpected or mismatched:
        kinds = (('missing', missing), ('unexpected', unexpected),
                 ('shape mismatch', mismatched))
        lines = [f'{source} does not fit {target}:']
        for title, keys in kinds:
            if keys:
                lines.append(f'  {title} ({len(keys)}): ' + ', '.join(keys))
        lines.append('  Check that the arch matches the checkpoint.')
        counts = '; '.join(f'{title} {len(keys)} (first: {keys[0]})'
                           for title, keys in kinds if keys)
        raise CheckpointMismatchError(
            '\n'.join(lines), f'{source} does not fit {target}: {counts}.')
    return {k: v for k, v in state_dict.items() if k in own}


def load_pretrained(model: torch.nn.Module,
                    filename: str,
                    prefix: Optional[str] = None) -> None:
    """Load a checkpoint file into a :class:`RegionViT`, strictly (see
    ``fit_state_dict``); a file that is not a checkpoint raises
    ``CheckpointFileError``."""
    checkpoint = load_checkpoint_file(
        filename, lambda: CheckpointLoader.load_checkpoint(
            filename, map_location='cpu', logger='current'))
    state_dict = extract_state_dict(checkpoint, filename)
    if prefix:
        state_dict = {
            k[len(prefix):]: v
            for k, v in state_dict.items() if k.startswith(prefix)
        }
    state_dict = checkpoint_filter_fn(state_dict, model.arch['kernel_sizes'],
                                      model.arch['patch_size'])
    state_dict = fit_state_dict(state_dict, model.state_dict(), filename,
                                f'RegionViT(arch={model.arch})')
    model.load_state_dict(state_dict)
    print_log(f'Loaded RegionViT weights from {filename}', logger='current')
