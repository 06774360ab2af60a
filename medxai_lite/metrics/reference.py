"""Reference scores every explanation has to beat: random maps and the chance level.

A score means something only by its distance from what a map that knows nothing about the
image gets. :func:`random_maps` makes such maps, either as pixel noise or with the spatial grain
of a CAM (noise on the target layer's grid, upsampled); :func:`chance_level` gives the expected
localisation score of a random map in closed form.
"""
from __future__ import annotations

import numpy as np

__all__ = ["GRIDS", "random_maps", "chance_level", "chance_scores"]

#: The named grids of :func:`random_maps` (a ``(h, w)`` tuple is accepted too).
GRIDS = ("pixel", "cam")


def random_maps(images, grid="pixel", *, seed: int = 0, model=None, arch: str | None = None) -> np.ndarray:
    """Uniform-noise maps, one per image: the reference any explanation has to beat.

    Parameters
    ----------
    images : Tensor or array [N, C, H, W]
        Only their number and size are used.
    grid : "pixel", "cam" or (h, w)
        ``"pixel"``: independent noise at every pixel, uniform in [0, 1). ``(h, w)``: noise on an
        ``h x w`` grid, upsampled bilinearly to the image size (``align_corners=False``) and scaled
        to [0, 1] per image, a map as coarse as a CAM read from that grid. ``"cam"``: the grid of
        the CAM target layer of ``model`` (``arch`` names its architecture), measured with
        :func:`medxai_lite.models.cam_grid`, and upsampled as :func:`medxai_lite.explain` upsamples
        that layer's CAMs (each cell at its receptive-field centre,
        :func:`medxai_lite.explain.cam.upsample_grid`), so that the reference peaks where a CAM
        can.
    seed : int
        Same seed, same maps (a fresh ``numpy.random.default_rng(seed)``).
    model, arch
        Needed for ``grid="cam"`` only.

    Returns
    -------
    np.ndarray float32 [N, H, W].

    Example
    -------
    >>> random_maps(images)                                        # pixel noise       # doctest: +SKIP
    >>> random_maps(images, "cam", model=model, arch="resnet18")  # CAM-grid noise    # doctest: +SKIP
    """
    shape = tuple(images.shape)
    if len(shape) != 4:
        raise ValueError(f"images must have shape [N, C, H, W]; got {list(shape)}")
    n, _, h, w = shape
    rng = np.random.default_rng(seed)
    aligned = None                                  # the arch whose CAM upsampling the noise follows
    if isinstance(grid, str) and grid == "pixel":
        return rng.random((n, h, w)).astype(np.float32)
    if isinstance(grid, str) and grid == "cam":
        if model is None or arch is None:
            raise ValueError("grid='cam' needs model= and arch= (the network whose CAM grid the noise takes)")
        if h != w:
            raise ValueError(f"grid='cam' measures the grid of a square input; the images are {h}x{w}: "
                             "pass grid=(h, w) instead")
        from ..models import cam_grid

        grid = cam_grid(model, arch, int(h))
        aligned = arch
    elif isinstance(grid, str):
        raise ValueError(f"grid must be one of {', '.join(GRIDS)} or a pair (h, w); got {grid!r}")
    try:
        gh, gw = (int(v) for v in grid)
    except (TypeError, ValueError):
        raise ValueError(f"grid must be one of {', '.join(GRIDS)} or a pair (h, w); got {grid!r}") from None
    if gh < 1 or gw < 1:
        raise ValueError(f"grid must have at least one cell each way; got {grid!r}")
    import torch

    from .._utils import minmax_scale

    from ..explain.cam import upsample_grid

    low = torch.from_numpy(rng.random((n, gh, gw), dtype=np.float32))
    # grid="cam": aligned like that layer's CAMs, so it peaks where they can; a bare grid: plain resizing
    up = upsample_grid(low, (h, w), aligned).numpy()
    return minmax_scale(up).astype(np.float32, copy=False)


def chance_level(masks, tolerance: float = 0.0) -> np.ndarray:
    """Per image, the expected localisation score of a random map: the share of the image that
    a random peak has to land in.

    For relevance mass accuracy, relevance rank accuracy and the strict pointing game that is
    the share of the image the lesion covers, ``|M| / (H W)``. With a ``tolerance`` (pixels,
    as :func:`~medxai_lite.metrics.pointing_game`'s) a peak anywhere within that distance of the
    lesion counts as a hit, so the region is the lesion grown by the tolerance (Euclidean
    distance, ``scipy.ndimage.distance_transform_edt``).

    Parameters
    ----------
    masks : bool [N, H, W]
    tolerance : float >= 0

    Returns
    -------
    np.ndarray float64 [N].

    Example
    -------
    >>> m = np.zeros((1, 10, 10), bool); m[0, 4:6, 4:6] = True
    >>> chance_level(m), chance_level(m, tolerance=1)
    (array([0.04]), array([0.12]))
    """
    if hasattr(masks, "detach"):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape [N, H, W]; got {list(masks.shape)}")
    masks = masks.astype(bool)
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0; got {tolerance!r}")
    if tolerance == 0:
        return masks.reshape(len(masks), -1).mean(1)
    from scipy import ndimage

    grown = np.stack([ndimage.distance_transform_edt(~m) <= tolerance for m in masks])
    return grown.reshape(len(masks), -1).mean(1)


def chance_scores(model, images, targets, maps, masks=None, *, tolerance: float = 0.0) -> np.ndarray:
    """:func:`chance_level` with the metric signature, so that the chance row of a localisation
    table is scored like a method (e.g. by :func:`~medxai_lite.metrics.score_table`): ``model``,
    ``images``, ``targets`` and ``maps`` are ignored (``maps`` only sets the table's number of rows).
    """
    if masks is None:
        raise ValueError("chance_scores needs masks= (bool [N, H, W], the lesion of each image)")
    return chance_level(masks, tolerance)


chance_scores.needs_masks = True
