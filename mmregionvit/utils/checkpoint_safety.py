"""Let ``torch.load(weights_only=True)`` read mmengine runner checkpoints.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine
0.10.7 calls ``torch.load`` without saying otherwise, so the numpy values
and message-hub objects a runner writes make ``--resume`` and testing a
trained checkpoint fail. Rather than switching the safety off, allow the
exact types mmengine writes.
"""
import pickle
from typing import Any

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
    """Add what mmengine's runner writes to torch's weights-only allow-list."""
    from mmengine.logging.history_buffer import HistoryBuffer

    # numeric dtypes of the logged arrays and scalars (numpy >= 2 pickles a
    # dtype with its class)
    dtypes = [
        type(np.dtype(c))
        for c in np.typecodes['AllFloat'] + np.typecodes['AllInteger'] + '?'
    ]
    torch.serialization.add_safe_globals([
        HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'),
        np.ndarray, np.dtype, np._core.multiarray._reconstruct,
        np._core.multiarray.scalar, *dtypes
    ])
