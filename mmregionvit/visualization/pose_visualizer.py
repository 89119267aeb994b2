"""mmpose's keypoint visualizer, drawing with OpenCV under NumPy >= 2.4."""
import numpy as np
from mmpose.visualization import PoseLocalVisualizer as _PoseLocalVisualizer

from ..registry import VISUALIZERS


@VISUALIZERS.register_module()
class PoseLocalVisualizer(_PoseLocalVisualizer):
    """mmpose's ``PoseLocalVisualizer`` with working OpenCV keypoints.

    mmpose 1.3.2 hands each keypoint's radius to ``draw_circles`` as a
    one-element array, which its OpenCV backend passes to ``int()``; NumPy
    2.4 refuses that conversion, so every keypoint drawing (``test.py
    --show-dir``, the inferencers) fails. Here that radius becomes a scalar
    first; everything else is mmpose's.
    """

    def draw_circles(self, center, radius, *args, **kwargs):
        if (self.backend == 'opencv' and isinstance(radius, np.ndarray)
                and radius.size == 1):
            radius = radius.item()
        return super().draw_circles(center, radius, *args, **kwargs)
