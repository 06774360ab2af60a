"""Model zoo, training and the trained-model cache."""
from .train import PROFILES, TrainingReport, cache_key, evaluate, get_trained_model, train_model
from .zoo import ARCHS, PAPER_ARCHS, SmallCNN, get_model, num_parameters, target_layer

__all__ = ["ARCHS", "PAPER_ARCHS", "SmallCNN", "get_model", "target_layer", "num_parameters",
           "PROFILES", "TrainingReport", "train_model", "evaluate", "get_trained_model", "cache_key"]
