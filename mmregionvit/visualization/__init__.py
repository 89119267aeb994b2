try:  # needs mmpose
    from .pose_visualizer import PoseLocalVisualizer
except ImportError:
    PoseLocalVisualizer = None

__all__ = ['PoseLocalVisualizer']
