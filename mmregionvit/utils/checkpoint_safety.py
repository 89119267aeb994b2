"""Loading checkpoints safely.

``allow_mmengine_checkpoints``: torch >= 2.6 loads with
``weights_only=True`` by default, and mmengine 0.10.7 calls ``torch.load``
without saying otherwise, so the numpy values and message-hub objects a
runner writes make ``--resume`` and testing a trained checkpoint fail.
Rather than switching the safety off, allow the exact types mmengine
writes.

``load_checkpoint_file``: where the package and its tools read a
checkpoint; a file that is not one fails with one line naming it.
"""
import argparse
import os.path as osp
import pickle
import re
from typing import Any, Callable, Optional

import numpy as np
import torch


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` as a runner checkpoint uses it, and for nothing else.

    A pickled ``HistoryBuffer`` names its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``; a general ``getattr`` would open
    the whole object graph to the unpickler, so only those are resolved.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    known = {
        'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods
    }
    if obj is HistoryBuffer and name in known:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}) while loading a checkpoint')


def allow_mmengine_checkpoints() -> None:
    """Add what mmengine's runner and the official training script write to
    torch's weights-only allow-list."""
    from mmengine.logging.history_buffer import HistoryBuffer

    # numeric dtypes of the logged arrays and scalars (numpy >= 2 pickles a
    # dtype with its class)
    dtypes = [
        type(np.dtype(c))
        for c in np.typecodes['AllFloat'] + np.typecodes['AllInteger'] + '?'
    ]
    # argparse.Namespace: the official training script saves its arguments
    # beside the weights ('args')
    torch.serialization.add_safe_globals([
        argparse.Namespace, HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'), np.ndarray, np.dtype,
        np._core.multiarray._reconstruct, np._core.multiarray.scalar, *dtypes
    ])


class CheckpointFileError(ValueError):
    """A file that is not a PyTorch checkpoint of weights."""


# the first bytes of a zip archive, the format of torch.save since 1.6
_ZIP_MAGIC = b'PK\x03\x04'


def _is_zip(filename: str) -> bool:
    with open(filename, 'rb') as f:
        return f.read(4) == _ZIP_MAGIC


def _why_not_loadable(filename: str, error: Exception) -> str:
    """In a few words, why ``torch.load`` refused ``filename``.

    torch's own messages are not passed on: for a file that is not a
    checkpoint at all they advise ``weights_only=False``, which would run
    whatever code the file holds.
    """
    message = str(error)
    unsafe = re.search(r'GLOBAL ([\w.]+)', message)
    if unsafe:
        return (f'it holds pickled {unsafe.group(1)} objects, not only '
                'weights; save the model\'s state_dict() instead')
    local = osp.isfile(filename)
    if local and osp.getsize(filename) == 0:
        return 'the file is empty'
    if (local and _is_zip(filename)) or 'PytorchStreamReader' in message \
            or 'EOF' in message:
        return 'it is truncated or damaged; download or copy it again'
    return 'it was not written by torch.save'


def load_checkpoint_file(filename: str,
                         load: Optional[Callable[[], Any]] = None,
                         mmap: bool = False) -> dict:
    """The dict a checkpoint file holds, loaded weights-only.

    Args:
        filename: the file (or URL, with ``load``); named in every error.
        load: reads it (default: ``torch.load`` of the local file, on the
            CPU).
        mmap: map the tensors instead of reading them (a cheap check that
            the file loads; files in torch's old format are read whole).

    Raises:
        CheckpointFileError: one line naming the file and what is wrong.
    """
    if load is None:
        if not osp.isfile(filename):
            raise FileNotFoundError(f'checkpoint {filename} does not exist')

        def load():
            return torch.load(
                filename,
                map_location='cpu',
                weights_only=True,
                mmap=mmap and _is_zip(filename))

    try:
        checkpoint = load()
    except OSError:  # missing, unreadable or not downloaded: said as is
        raise
    except Exception as e:  # whatever torch.load raised for a bad file
        raise CheckpointFileError(
            f'{filename} is not a PyTorch checkpoint '
            f'({_why_not_loadable(filename, e)})') from None
    if not isinstance(checkpoint, dict):
        raise CheckpointFileError(
            f'{filename} is not a PyTorch checkpoint (it holds a '
            f'{type(checkpoint).__name__}, not a dict of weights)')
    return checkpoint
