"""PatchKNN: a training-free baseline (nearest-neighbour search over hand-made patch features).

Fitted on ``train/good`` images in seconds on a CPU with numpy, OpenCV and numba only (no
PyTorch): every pixel of a squashed image gets multi-scale colour, gradient, blob and texture
features, pooled over small patches; a category's model is a memory bank of its normal
patches; a test patch's anomaly score is its exact distance to the nearest normal patch
(:class:`~.search.PatchIndex`).
"""

from .config import PatchKNNConfig
from .model import PatchKNN

__all__ = ["PatchKNNConfig", "PatchKNN"]
