"""Figures: image grids with lesion outlines, heatmap overlays, method grids, the live explorer,
training curves, confusion matrices, and the figures of the evaluation and benchmark chapters
(they take computed results and draw)."""
from .compare import explore, explorer_figure, method_grid
from .evaluation import (REFERENCE_COLOUR, VERDICT_COLOURS, cascade_labels, method_colours, plot_mean_bars,
                         plot_perturbation_curves, plot_pvalue_grid, plot_randomisation_curves,
                         plot_randomisation_maps, plot_road_curves, plot_score_heatmap, plot_timing, style_verdicts)
from .latent import latent_scatter, plot_projection_grid, with_thumbnails
from .plots import (add_colorbar, outline_mask, overlay, plot_confusion, plot_history, show_grid,
                    to_display)

__all__ = ["show_grid", "overlay", "outline_mask", "plot_confusion", "plot_history", "add_colorbar", "to_display",
           "method_grid", "explore", "explorer_figure", "REFERENCE_COLOUR", "VERDICT_COLOURS", "cascade_labels",
           "method_colours", "style_verdicts", "plot_score_heatmap", "plot_perturbation_curves", "plot_road_curves",
           "plot_randomisation_curves", "plot_randomisation_maps", "plot_timing", "plot_mean_bars", "plot_pvalue_grid",
           "latent_scatter", "with_thumbnails", "plot_projection_grid"]
