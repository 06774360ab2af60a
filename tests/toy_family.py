"""A toy explanation family, registered the way a new family module would be.

Importing this module is the whole registration (a real family adds one import line to
``medxai_lite/explain/__init__.py``). One method per output kind, each a few lines, plus
deliberately broken ones that ``explain`` must refuse.
"""
from __future__ import annotations

import numpy as np

from medxai_lite.explain import AdapterResult, register

_TOY = dict(library="none", needs_gradients=False, cost="fast", paper="toy")


@register("toy_brightness", title="Brightness map", family="Perturbation-based", **_TOY)
def _brightness(call, gamma: float = 1.0):
    """Mean channel value, shifted to be non-negative, to the power ``gamma``."""
    x = call.images.mean(1)
    return AdapterResult(raw=(x - x.amin((1, 2), keepdim=True)) ** gamma)


@register("toy_concepts", title="Toy concept scores", family="Concept-based", output="concepts", **_TOY)
def _concepts(call):
    """Two 'concepts': the mean and the spread of each image."""
    x = call.images.flatten(1)
    return AdapterResult(value={"names": ["mean", "spread"],
                                "scores": np.stack([x.mean(1).numpy(), x.std(1).numpy()], 1)})


@register("toy_neighbours", title="Toy nearest references", family="Example-based", output="examples", **_TOY)
def _neighbours(call, k: int = 2):
    """The ``k`` nearest images of the batch itself (the image is its own nearest, distance 0)."""
    x = call.images.flatten(1).numpy()
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return AdapterResult(value={"indices": order, "distances": np.take_along_axis(d, order, 1)})


@register("toy_caption", title="Toy caption", family="Text-based", output="text", **_TOY)
def _caption(call):
    """'bright' or 'dark' per image."""
    return AdapterResult(value=["bright" if v > 0 else "dark" for v in call.images.mean((1, 2, 3)).tolist()])


@register("toy_broken_examples", title="Broken examples", family="Example-based", output="examples", **_TOY)
def _broken_examples(call):
    """Distances in the wrong order: the contract says nearest first."""
    n = len(call.images)
    return AdapterResult(value={"indices": np.zeros((n, 2), int), "distances": np.tile([2.0, 1.0], (n, 1))})


@register("toy_broken_text", title="Broken text", family="Text-based", output="text", **_TOY)
def _broken_text(call):
    """One string too few."""
    return AdapterResult(value=["x"] * (len(call.images) - 1))


@register("toy_broken_map", title="Broken map", family="Perturbation-based", **_TOY)
def _broken_map(call):
    """One map too many."""
    return AdapterResult(raw=np.zeros((len(call.images) + 1, 4, 4), np.float32))


NAMES = ("toy_brightness", "toy_concepts", "toy_neighbours", "toy_caption", "toy_broken_examples", "toy_broken_text",
         "toy_broken_map")
