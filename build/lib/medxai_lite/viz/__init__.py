"""Figures: image grids with lesion outlines, heatmap overlays, training curves, confusion matrices."""
from .plots import (add_colorbar, outline_mask, overlay, plot_confusion, plot_history, show_grid,
                    to_display)

__all__ = ["show_grid", "overlay", "outline_mask", "plot_confusion", "plot_history", "add_colorbar", "to_display"]
