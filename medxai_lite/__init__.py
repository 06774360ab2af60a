"""medxai_lite: the helper package of the MedXAI book.

Datasets (phantoms and public), a CNN model zoo with a training cache, explanations, metrics,
statistics and plots, behind a small flat API::

    from medxai_lite import load_dataset, get_trained_model, explain, set_seed
"""
from __future__ import annotations

__version__ = "0.1.0"

from ._utils import cache_dir, device, model_device, set_seed, to_numpy
from .data import denormalize, list_datasets, load_dataset, normalize
from . import explain  # the subpackage, callable as the verb: mx.explain("gradcam", model, images)
from .explain import Explanation, list_methods
from .models import ARCHS, PAPER_ARCHS, PROFILES, cam_grid, get_model, get_trained_model, target_layer

__all__ = [
    "__version__", "set_seed", "device", "model_device", "to_numpy", "cache_dir",
    "load_dataset", "list_datasets", "normalize", "denormalize",
    "ARCHS", "PAPER_ARCHS", "PROFILES", "get_model", "target_layer", "cam_grid", "get_trained_model",
    "explain", "Explanation", "list_methods",
]
