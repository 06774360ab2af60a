"""Which test images a chapter explains: the lesion-bearing images of a dataset, at a model's size.

The CAM, gradient and evaluation chapters all explain the same kind of images: test images that
carry a lesion, at the image size the network was trained on, drawn from the same pool so that
every chapter looks at the same pictures for the same seed.
"""
from __future__ import annotations

from .models.zoo import DEFAULT_ARCH

__all__ = ["LESION_POOL", "lesion_images", "explain_lesions"]

#: How many test images the lesion-bearing ones are picked from.
LESION_POOL = 64


def lesion_images(dataset: str, model, n: int, seed: int = 0, pool: int = LESION_POOL):
    """The test split of ``dataset`` and a batch of its first ``n`` lesion-bearing images.

    The split holds ``pool`` images at ``model.report.settings["image_size"]`` (the size the
    network was trained at; a model from :func:`medxai_lite.models.get_trained_model` carries
    that report). "Lesion-bearing" means a non-empty mask where the dataset has masks; a dataset
    without masks gives its first ``n`` images (:func:`medxai_lite.data.lesion_batch`). Fewer
    than ``n`` come back when the pool holds fewer.

    Returns ``(test, batch)``: the dataset and the stacked batch (``"image"`` [n, C, H, W],
    ``"label"`` [n], ``"index"``, and ``"mask"`` [n, H, W] where there are masks).

    Example
    -------
    >>> test, batch = lesion_images("phantom-brain-mri", model, 8)     # doctest: +SKIP
    >>> batch["image"].shape                                          # doctest: +SKIP
    torch.Size([8, 3, 112, 112])
    """
    from .data import lesion_batch, load_dataset

    report = getattr(model, "report", None)
    if report is None or "image_size" not in getattr(report, "settings", {}):
        raise ValueError("model must carry a training report with its image size (model.report.settings"
                         "['image_size']), as the models of medxai_lite.models.get_trained_model do")
    test = load_dataset(dataset, split="test", image_size=report.settings["image_size"], n=pool, seed=seed)
    return test, lesion_batch(test, n)


def explain_lesions(dataset: str, methods, *, arch: str = DEFAULT_ARCH, profile: str = "cpu", n: int = 8,
                    seed: int = 0, method_options: dict | None = None, model=None) -> dict:
    """The trained network of ``dataset``, its first ``n`` lesion-bearing test images, and the
    maps of every method in ``methods`` explaining the images' true class.

    ``model`` defaults to :func:`medxai_lite.models.get_trained_model` ``(dataset, arch,
    profile, seed)`` (from the cache once trained); the images come from :func:`lesion_images`;
    ``method_options`` maps a method to its :func:`medxai_lite.explain.explain` options. ``seed``
    also seeds the stochastic methods (unless their options name another).

    Returns a dict: ``model``, ``test`` (the dataset), ``batch`` (as :func:`lesion_images`) and
    ``maps`` (method -> float32 [n, H, W] in [0, 1]).

    Example
    -------
    >>> run = explain_lesions("phantom-skin", ["gradcam", "saliency"], n=4)   # doctest: +SKIP
    >>> run["maps"]["gradcam"].shape                                       # doctest: +SKIP
    (4, 112, 112)
    """
    from .explain import explain
    from .models import get_trained_model

    if model is None:
        model = get_trained_model(dataset, arch, profile, seed=seed, progress=False)
    test, batch = lesion_images(dataset, model, n, seed=seed)
    options = dict(method_options or {})
    maps = {m: explain(m, model, batch["image"], batch["label"], **{"seed": seed, **options.get(m, {})}).maps
            for m in methods}
    return dict(model=model, test=test, batch=batch, maps=maps)
