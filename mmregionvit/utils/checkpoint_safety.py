"""Let ``torch.load(weights_only=True)`` read mmengine runner checkpoints.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine
0.10.7 calls ``torch.load`` without saying otherwise, so the numpy values
and message-hub objects a runner writes make ``--resume`` and testing a
trained checkpoint fail. Rather than switching the safety off, allow the
exact types mmengine writes.
"""
import numpy as np
import torch


def _mmengine_checkpoint_types() -> list:
    from mmengine.logging.history_buffer import HistoryBuffer
    types = [HistoryBuffer, np.ndarray, np.dtype,
             np._core.multiarray._reconstruct, np._core.multiarray.scalar]
    # dtype classes of the numeric arrays and scalars mmengine logs
    types += [type(np.dtype(t)) for t in
              (np.float16, np.float32, np.float64, np.int32, np.int64,
               np.uint8, np.bool_)]
    return types


def allow_mmengine_checkpoints() -> None:
    """Add mmengine's checkpoint types to torch's weights-only allow-list."""
    torch.serialization.add_safe_globals(_mmengine_checkpoint_types())
