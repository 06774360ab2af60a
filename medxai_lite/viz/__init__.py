"""Figures: image grids with lesion outlines, heatmap overlays, method grids, the live explorer,
training curves, confusion matrices."""
from .compare import explore, explorer_figure, method_grid
from .plots import (add_colorbar, outline_mask, overlay, plot_confusion, plot_history, show_grid,
                    to_display)

__all__ = ["show_grid", "overlay", "outline_mask", "plot_confusion", "plot_history", "add_colorbar", "to_display",
           "method_grid", "explore", "explorer_figure"]
