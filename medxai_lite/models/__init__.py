"""Model zoo, training and the trained-model cache."""
from .train import PROFILES, TrainingReport, cache_key, evaluate, get_trained_model, train_model
from .zoo import (ARCHS, OUTPUT_STRIDES, PAPER_ARCHS, SmallCNN, cam_grid, get_model, grid_origin, num_parameters,
                  target_layer)

__all__ = ["ARCHS", "PAPER_ARCHS", "OUTPUT_STRIDES", "SmallCNN", "get_model", "target_layer", "cam_grid",
           "grid_origin", "num_parameters",
           "PROFILES", "TrainingReport", "train_model", "evaluate", "get_trained_model", "cache_key"]
