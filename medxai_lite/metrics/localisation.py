"""Localisation metrics: does the explanation fall on the ground-truth region?

All three compare ``maps`` [N, H, W] with boolean ``masks`` [N, H, W] (the lesion); they ignore
``model`` and ``targets`` (pass ``None``) and return ``np.ndarray [N]`` float64, one score per
image, higher is better. Empty masks raise; constant maps (no ranking, no peak) score NaN with
a ``RuntimeWarning``, or raise with ``on_constant="raise"``.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .._utils import check_fraction
from . import check_maps, check_masks, constant_maps, flag_undefined, register_metric

__all__ = ["relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game", "pointing_ceiling",
           "cam_pointing_ceiling", "peak_plateau"]


@register_metric("relevance_mass_accuracy", category="localisation", higher_is_better=True, needs_masks=True,
                 needs_model=False, reference="Arras, Osman & Samek 2022, Information Fusion 81:14-40")
def relevance_mass_accuracy(model, images, targets, maps, masks=None, *, positive_only: bool = True,
                            on_constant: str = "nan", on_empty: str = "raise") -> np.ndarray:
    """Relevance Mass Accuracy: the share of the relevance that lies inside the mask.

    .. math:: \\mathrm{RMA} = \\frac{R_{\\mathrm{within}}}{R_{\\mathrm{total}}}
              = \\frac{\\sum_{p \\in M} R_p}{\\sum_{p} R_p}

    (Arras, Osman & Samek 2022, "CLEVR-XAI", Information Fusion 81). As in the paper only
    positive relevance counts: negative values are set to 0 first (``positive_only=True``).

    Parameters
    ----------
    model, targets : ignored (pass ``None``)
    images : Tensor [N, C, H, W] or None
        Only used to check the maps' size.
    maps : array [N, H, W]
    masks : bool [N, H, W], required
    positive_only : bool
        Clip negative relevance to 0 (the paper's choice). With ``False``, maps must be >= 0.
    on_constant : {"nan", "raise"}
        What to do when an image has no positive relevance at all (0 / 0).
    on_empty : {"raise", "nan"}
        An empty mask leaves the score undefined: an error (default) or NaN for that image.

    Returns
    -------
    np.ndarray float64 [N] in [0, 1]. 1 when all relevance is inside the mask; a constant
    positive map scores the chance level ``|M| / (H W)``.

    Example
    -------
    >>> maps = masks.astype(float)                     # relevance exactly on the lesion
    >>> relevance_mass_accuracy(None, None, None, maps, masks)
    array([1., 1.])
    """
    maps = check_maps(maps, images)
    masks, empty = check_masks(masks, maps, "relevance_mass_accuracy", on_empty)
    if positive_only:
        maps = np.clip(maps, 0.0, None)
    elif (maps < 0).any():
        raise ValueError("maps must be non-negative for relevance_mass_accuracy with positive_only=False")
    flat = maps.reshape(len(maps), -1)
    total = flat.sum(1)
    within = (flat * masks.reshape(len(masks), -1)).sum(1)
    undefined = flag_undefined(total <= 0, "relevance_mass_accuracy", on_constant,
                               "is undefined without positive relevance (0 / 0)", what="maps have no positive relevance")
    out = np.full(len(maps), np.nan)
    ok = ~undefined & ~empty
    out[ok] = within[ok] / total[ok]
    return out


@register_metric("relevance_rank_accuracy", category="localisation", higher_is_better=True, needs_masks=True,
                 needs_model=False, reference="Arras, Osman & Samek 2022, Information Fusion 81:14-40")
def relevance_rank_accuracy(model, images, targets, maps, masks=None, *, on_constant: str = "nan",
                            on_empty: str = "raise") -> np.ndarray:
    """Relevance Rank Accuracy: how many of the K most relevant pixels lie in the mask, K = |M|.

    .. math:: \\mathrm{RRA} = \\frac{|P_{\\mathrm{top}\\,K} \\cap M|}{K}, \\qquad K = |M|

    (Arras, Osman & Samek 2022). Ties at the K-th value are shared fairly: if ``T`` pixels tie
    at the cut-off and ``k`` of them are still needed, each counts ``k / T`` (the expected
    score under random tie-breaking), so the score never depends on pixel order.

    Parameters
    ----------
    model, targets : ignored; images : only used to check the size
    maps : array [N, H, W]; masks : bool [N, H, W], required
    on_constant : {"nan", "raise"}
        A constant map has no ranking: NaN with a warning, or an error.
    on_empty : {"raise", "nan"}
        An empty mask leaves the score undefined: an error (default) or NaN for that image.

    Returns
    -------
    np.ndarray float64 [N] in [0, 1]; 1 when the top-|M| pixels are exactly the mask.

    Example
    -------
    >>> relevance_rank_accuracy(None, None, None, masks + 0.1 * rng.random(masks.shape), masks)
    array([1., 1.])
    """
    maps = check_maps(maps, images)
    masks, empty = check_masks(masks, maps, "relevance_rank_accuracy", on_empty)
    const = constant_maps(maps, "relevance_rank_accuracy", on_constant)
    n = len(maps)
    flat = maps.reshape(n, -1)
    inside = masks.reshape(n, -1)
    k = np.maximum(inside.sum(1), 1)                               # K = |M| per image (empty: NaN below)
    cutoff = -np.sort(-flat, axis=1)[np.arange(n), k - 1]          # the K-th largest value
    above = flat > cutoff[:, None]
    tied = flat == cutoff[:, None]
    still_needed = k - above.sum(1)                               # places left for tied pixels
    hits = (above & inside).sum(1) + still_needed * (tied & inside).sum(1) / tied.sum(1)
    out = hits / k
    out[const | empty] = np.nan
    return out


@register_metric("pointing_game", category="localisation", higher_is_better=True, needs_masks=True,
                 needs_model=False, reference="Zhang et al. 2018, IJCV 126:1084-1102")
def pointing_game(model, images, targets, maps, masks=None, *, tolerance: float = 0.0,
                  on_constant: str = "nan", on_empty: str = "raise") -> np.ndarray:
    """Pointing Game: is the map's maximum inside the mask (within ``tolerance`` pixels)?

    .. math:: \\mathrm{hit} = \\mathbb{1}\\left[\\, d\\big(\\arg\\max_p R_p,\\; M\\big) \\le \\tau \\right]

    where ``d`` is the Euclidean distance in pixels to the nearest mask pixel (Zhang et al.
    2018, "Top-down neural attention by excitation backprop", IJCV; the paper used
    ``tau = 15`` px at 224 px input). Averaged over images this is the pointing accuracy.
    When several pixels share the maximum, the score is the fraction of them that hit (the
    hit probability under random tie-breaking); for a map with a unique peak it is 0 or 1.

    Parameters
    ----------
    model, targets : ignored; images : only used to check the size
    maps : array [N, H, W]; masks : bool [N, H, W], required
    tolerance : float, >= 0
        Radius in pixels around the mask that still counts as a hit (default 0: strict).
    on_constant : {"nan", "raise"}
        A constant map has no peak: NaN with a warning, or an error.
    on_empty : {"raise", "nan"}
        An empty mask leaves the score undefined: an error (default) or NaN for that image.

    Returns
    -------
    np.ndarray float64 [N]: 1.0 hit, 0.0 miss (fractions only for tied peaks).

    Example
    -------
    >>> maps = np.zeros((1, 8, 8)); maps[0, 2, 2] = 1
    >>> masks = np.zeros((1, 8, 8), bool); masks[0, 2, 4] = True
    >>> pointing_game(None, None, None, maps, masks), pointing_game(None, None, None, maps, masks, tolerance=2)
    (array([0.]), array([1.]))
    """
    if isinstance(tolerance, bool) or not np.isscalar(tolerance) or not np.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number of pixels >= 0; got {tolerance!r}")
    maps = check_maps(maps, images)
    masks, empty = check_masks(masks, maps, "pointing_game", on_empty)
    const = constant_maps(maps, "pointing_game", on_constant)
    if tolerance > 0:
        # distance of every pixel to the nearest mask pixel; the per-image transform is cheap
        near = np.stack([ndimage.distance_transform_edt(~m) <= tolerance if m.any() else m for m in masks])
    else:
        near = masks
    n = len(maps)
    flat = maps.reshape(n, -1)
    peak = flat == flat.max(1, keepdims=True)
    out = (peak & near.reshape(n, -1)).sum(1) / peak.sum(1)
    out[const | empty] = np.nan
    return out


def peak_plateau(maps, masks, *, level: float = 0.95, on_constant: str = "nan", on_empty: str = "raise"):
    r"""How sharp is each map's peak, and how much of it lies in the lesion?

    The pointing game reads one pixel, the maximum. When other pixels come within a few per cent
    of it, which one wins is close to a coin toss, and the score says more about the near-tie
    than about the map. This measures the *plateau*, the pixels within :math:`1 - \lambda` of the
    map's range below its maximum,

    .. math:: P_\lambda = \{\, p : R_p \ge \max R - (1 - \lambda)(\max R - \min R) \,\},
              \qquad \mathrm{share} = \frac{|P_\lambda \cap M|}{|P_\lambda|}

    (for a map with minimum 0, as a CAM has, the threshold is :math:`\lambda \max R`). The share
    is the pointing game's expected score if the peak were drawn at random from the plateau; at
    ``level=1`` the plateau is the tied maximum and the share is :func:`pointing_game`'s score.
    A share near the pointing game says the score is stable under small changes of the map; a
    plateau as large as the lesion makes a strict hit a matter of near-ties.

    Parameters
    ----------
    maps : array [N, H, W]; masks : bool [N, H, W], required
    level : float in (0, 1]
        :math:`\lambda`, the plateau's floor as a fraction of the way from the map's minimum to
        its maximum (default 0.95: within 5 % of the range below the peak).
    on_constant, on_empty : as for :func:`pointing_game`.

    Returns
    -------
    pandas.DataFrame, one row per image: ``plateau_px`` (the plateau's area in pixels),
    ``lesion_px`` (the mask's) and ``share_in_lesion`` (NaN for a constant map or, with
    ``on_empty="nan"``, an empty mask).

    Example
    -------
    >>> maps = np.zeros((1, 6, 6)); maps[0, 1:3, 1:3] = 1.0; maps[0, 4, 4] = 0.97
    >>> masks = np.zeros((1, 6, 6), bool); masks[0, 1:3, 1:2] = True
    >>> peak_plateau(maps, masks).iloc[0].tolist()      # 5 plateau pixels, 2 of them in the mask
    [5.0, 2.0, 0.4]
    """
    import pandas as pd

    level = check_fraction("level", level, closed=True)
    maps = check_maps(maps, None)
    masks, empty = check_masks(masks, maps, "peak_plateau", on_empty)
    const = constant_maps(maps, "peak_plateau", on_constant)
    flat, lesion = maps.reshape(len(maps), -1), masks.reshape(len(masks), -1)
    top, bottom = flat.max(1, keepdims=True), flat.min(1, keepdims=True)
    plateau = flat >= top - (1.0 - level) * (top - bottom)
    area = plateau.sum(1).astype(np.float64)
    share = (plateau & lesion).sum(1) / area
    share[const | empty] = np.nan
    return pd.DataFrame({"plateau_px": area, "lesion_px": lesion.sum(1).astype(np.float64), "share_in_lesion": share})


def _node_pixels(size: int, stride: float, origin: float) -> list:
    """Per grid node along one axis, the alternative sets of pixels that hold the upsampled map's
    maximum when that node is the grid's largest (see :func:`pointing_ceiling`)."""
    pixels = np.arange(size)
    nodes = np.arange(origin, size, stride)
    out = []
    for i, p in enumerate(nodes):
        if len(nodes) == 1:
            out.append([pixels])                       # one node: every pixel reads it
        elif i == 0 or i == len(nodes) - 1:            # clamped beyond the node: one tied block
            block = pixels[pixels <= p] if i == 0 else pixels[pixels >= p]
            out.append([block if len(block) else pixels[[0 if i == 0 else -1]]])
        elif float(p).is_integer():
            out.append([np.array([int(p)])])
        else:                                          # between two pixels: either can be the peak
            out.append([np.array([int(np.floor(p))]), np.array([int(np.ceil(p))])])
    return out


def pointing_ceiling(masks, stride, origin, *, tolerance: float = 0.0) -> np.ndarray:
    r"""The best pointing game any map upsampled *bilinearly* from a grid can reach, per image.

    A map interpolated bilinearly from a grid, with the package's alignment
    (:func:`medxai_lite.explain.cam.upsample_registered` with ``mode="bilinear"``: cell :math:`(i, j)`
    at its receptive-field centre, pixel :math:`(o_y + iS, o_x + jS)`, clamped beyond the first and
    last nodes) takes its maximum at the largest node. Which pixels hold it depends on where that
    node lies:

    - an interior node on a whole pixel: that pixel;
    - an interior node between two pixels (a half-pixel origin, as VGG16's and SmallCNN's
      :math:`S/2 - 1/2`): one of the two, whichever side the neighbouring cells favour;
    - the first or last node of an axis: every pixel from the node to the image border, which
      all read the clamped node and tie.

    :func:`pointing_game` scores a tie by the share of the tied pixels in the mask, so the ceiling
    is the best such share over the nodes and their alternatives:

    .. math:: \mathrm{ceiling} = \max_{(i, j)}\; \max_{P \in \mathcal{P}_{ij}}\;
              \frac{|P \cap M_\tau|}{|P|}

    with :math:`\mathcal{P}_{ij}` the pixel sets above and :math:`M_\tau` the mask grown by
    ``tolerance`` pixels. A lesion smaller than a cell that falls between nodes cannot be
    pointed at by any bilinear map of that layer, however good the network. The package's own
    CAMs interpolate bicubically (:data:`medxai_lite.explain.cam.UPSAMPLE_MODE`), whose peak can
    fall between two nodes that both fire: for them this is the share of lesions that hold a cell
    centre, which they can exceed, not a bound. ``stride`` and ``origin`` are
    numbers or ``(y, x)`` pairs (see :func:`medxai_lite.models.grid_origin`).

    Returns
    -------
    np.ndarray float64 [N]: 1.0 where some node's pixel can hit, a fraction where only a tied
    border block overlaps the lesion, 0.0 where nothing can.

    Example
    -------
    >>> masks = np.zeros((2, 24, 24), bool); masks[0, 7:10, 7:10] = True; masks[1, 1:3, 1:3] = True
    >>> pointing_ceiling(masks, 8, 0.0)   # nodes at 0, 8 and 16: the first lesion holds (8, 8)
    array([1., 0.])
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be [N, H, W]; got shape {masks.shape}")
    if isinstance(tolerance, bool) or not np.isscalar(tolerance) or not np.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number of pixels >= 0; got {tolerance!r}")
    (sy, sx) = (stride, stride) if np.isscalar(stride) else stride
    (oy, ox) = (origin, origin) if np.isscalar(origin) else origin
    if min(sy, sx) <= 0:
        raise ValueError(f"stride must be positive; got {stride!r}")
    H, W = masks.shape[1:]
    rows, cols = _node_pixels(H, sy, oy), _node_pixels(W, sx, ox)
    out = np.zeros(len(masks))
    for k, m in enumerate(masks):
        near = (ndimage.distance_transform_edt(~m) <= tolerance if tolerance > 0 else m).astype(np.float64)
        # the best share in the mask over every (row set, column set) pair of node alternatives
        best = 0.0
        for ys in (a for node in rows for a in node):
            sub = near[ys]
            for xs in (a for node in cols for a in node):
                best = max(best, float(sub[:, xs].mean()))
            if best == 1.0:
                break
        out[k] = best
    return out


def cam_pointing_ceiling(masks, model, arch: str, *, tolerance: float = 0.0):
    """:func:`pointing_ceiling` for the CAM grid of ``model``: the grid of its target layer
    (:func:`medxai_lite.models.cam_grid`) at the masks' size, its stride and its origin
    (:func:`medxai_lite.models.grid_origin`).

    Returns ``(grid, ceiling)``: ``(h, w)`` of the CAM grid and float64 [N], 1.0 where a CAM of
    that layer can hit the lesion at all.

    Example
    -------
    >>> (h, w), ceiling = cam_pointing_ceiling(masks, model, "resnet18")   # doctest: +SKIP
    """
    from ..models import cam_grid, grid_origin
    from ..models.zoo import cell_stride

    masks = np.asarray(masks.detach().cpu().numpy() if hasattr(masks, "detach") else masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be [N, H, W]; got shape {masks.shape}")
    if masks.shape[1] != masks.shape[2]:
        raise ValueError(f"masks must be square [N, S, S] (the zoo's images are); got shape {masks.shape}")
    size = masks.shape[-1]
    h, w = cam_grid(model, arch, int(size))
    stride = cell_stride(size, h)
    return (h, w), pointing_ceiling(masks, stride, grid_origin(arch, stride), tolerance=tolerance)
