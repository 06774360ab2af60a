"""Model zoo, training and the trained-model cache.

What the package knows about each architecture (CAM layer, stages, capabilities, LRP
canonizer, how to recognise a model) is one :class:`ArchSpec` per entry of :data:`ARCH_SPECS`.
"""
from .train import PROFILES, TrainingReport, cache_key, evaluate, get_trained_model, train_model, training_precision
from .vit import HybridViT
from .zoo import (ARCH_SPECS, ARCHS, CAPABILITIES, DEFAULT_ARCH, OUTPUT_STRIDES, PAPER_ARCHS, ArchSpec, SmallCNN, arch_spec,
                  cam_grid, get_model, grid_origin, infer_arch, module_name, num_parameters, resolve_module, stage_layers,
                  target_layer)

__all__ = ["ARCHS", "PAPER_ARCHS", "ARCH_SPECS", "CAPABILITIES", "ArchSpec", "arch_spec", "infer_arch",
           "OUTPUT_STRIDES", "SmallCNN", "HybridViT", "get_model", "target_layer", "stage_layers", "resolve_module", "module_name", "cam_grid",
           "grid_origin", "num_parameters", "DEFAULT_ARCH",
           "PROFILES", "TrainingReport", "train_model", "evaluate", "get_trained_model", "cache_key",
           "training_precision"]
