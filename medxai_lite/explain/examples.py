r"""Example-based methods (survey §2.2.1): explain a prediction with other images, real or made.

Every method reads the classifier's **latent space**: the input of its final linear layer
(:func:`medxai_lite.latent.penultimate_features`, the globally pooled last block of a CNN, the
class token of the hybrid ViT), written :math:`\mathrm{ENC}(x)` below.

``"examples"`` methods (indices of reference images, nearest first):

- ``nearest_examples``: the ``k`` reference images closest to each image in that space
  (scikit-learn ``NearestNeighbors``);
- ``prototypes``: one or more prototypes per class (the class mean in feature space, or k-means
  centres within the class), each shown by the reference image nearest to it, ranked by their
  distance to each image;
- ``influence``: the training images whose gradients help, or hurt, each prediction most:
  TracIn (Pruthi et al. 2020) through ``captum.influence``.

``"map"`` methods (a relevance map, with a made image in ``extras``):

- ``counterfactual_proto``: counterfactuals guided by prototypes (Van Looveren & Klaise 2021);
  the map is :math:`|x_{cf} - x|`;
- ``cem_pp`` and ``cem_pn``: the Contrastive Explanation Method's pertinent positive and
  pertinent negative (Dhurandhar et al. 2018);
- ``l2x``: the ``k`` patches chosen by a trained L2X explainer (Chen et al. 2018;
  :mod:`medxai_lite.models.explainers`).

The reference set
-----------------
The methods that need images to compare with take ``references`` (``train`` for ``l2x`` and
``influence``, which learn from or rank a training set):

- ``None`` (default): the classifier's own training split, for a model that carries a training
  report (:func:`~medxai_lite.models.get_trained_model`,
  :func:`~medxai_lite.models.explainers.get_mislabelled_model`); its features are cached beside
  the model (:func:`training_index`), so a later call runs no network over the training set;
- a dataset of :mod:`medxai_lite.data` (its labels are used), an image tensor ``[M, 3, H, W]``, a
  pair ``(images, labels)``, or an :class:`ExampleIndex` built once with :func:`example_index`;
- ``"batch"``: the images being explained, labelled by the model's predictions. It needs no
  data and is what the ``"quick"`` presets use; it answers "which of *these* images does the model
  treat alike", not "which training images".

Made images live in the model's normalised input space and are kept inside the range a real
image can take there (:math:`[0, 1]` per channel after denormalisation, widened to any input
that already lies outside it).
"""
from __future__ import annotations

import contextlib
import warnings
import weakref
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from .._utils import check_choice, model_device
from .._utils import check_positive_int as _int
from .registry import AdapterResult, register

__all__ = ["ExampleIndex", "Prototypes", "METRICS", "BOOK_SEARCH", "BOOK_L2X", "SCOPES", "ESTIMATORS", "HESSIAN_DAMPING",
           "example_index", "training_split", "training_index", "class_prototypes", "self_influence",
           "influence_scores"]

_EX = "Example-based"
#: Distances in feature space :class:`ExampleIndex` accepts (scikit-learn metric names).
METRICS = ("euclidean", "cosine")
#: The chapter's ("book" preset) budget for the searches that make an image (prototype
#: counterfactuals, CEM): each Adam/FISTA step is a forward and backward pass of the network, and
#: the adapters' defaults (2 rounds of the search over ``c`` x 100 steps) cost 200 of them per
#: image. Two rounds of 40 steps (the second with ``c`` raised tenfold where the first failed,
#: halved where it succeeded) cost 80; the solutions found are less sparse.
BOOK_SEARCH = {"steps": 40, "c_steps": 2}
#: The chapter's L2X: trained once per classifier on its training split and cached. A 16-pixel
#: patch grid (6 x 6 at the ``cpu`` profile's 96 px, twice the CAM chapter's 8 px cells), a narrow explainer (``width`` 8),
#: small batches and five epochs, so that training fits a CPU budget of seconds per dataset
#: (about 400 steps on 640 images); a learning rate of 0.003, below the default, learnt more
#: steadily in that many steps.
BOOK_L2X = {"train": None, "k": 4, "patch": 16, "epochs": 5, "approximator": "learned", "width": 8,
            "batch_size": 8, "lr": 0.003, "tau": 0.5}


# --------------------------------------------------------------------------- the latent space
def _seed() -> int:
    """The seed ``explain`` gave torch's forked generator (for the libraries and trainings here)."""
    return int(torch.initial_seed() % 2**31)


def _features(model, images: torch.Tensor, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``(features [N, D], logits [N, C])`` of a batch, without gradients."""
    from ..latent import penultimate_features

    feats = penultimate_features(model, images, batch_size=batch_size, keep_images=False)
    return feats.features, feats.logits


def _encode(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, ENC(x))`` with autograd: one forward pass, the head's input read by a hook."""
    from ..latent import classifier_head

    seen = {}
    handle = classifier_head(model).register_forward_hook(lambda m, i, o: seen.__setitem__("f", i[0]))
    try:
        out = model(x)
    finally:
        handle.remove()
    return out, seen["f"].flatten(1)


@dataclass
class ExampleIndex:
    """Reference images in a model's latent space, ready for nearest-neighbour queries.

    Attributes: ``features`` float32 [M, D]; ``labels`` int [M] or ``None`` (the labels the
    references are known by; for a training split, the labels the model was trained on);
    ``predictions`` int [M] or ``None`` (the model's); ``metric`` (:data:`METRICS`); ``source``
    (where the references came from); ``dataset`` (the dataset, when there is one: its items are
    the pictures a gallery shows).
    """

    features: np.ndarray
    labels: np.ndarray | None = None
    predictions: np.ndarray | None = None
    metric: str = "euclidean"
    source: str = "tensor"
    dataset: Any = field(default=None, repr=False)

    def __post_init__(self):
        from sklearn.neighbors import NearestNeighbors

        check_choice("metric", self.metric, METRICS)
        self.features = np.asarray(self.features, dtype=np.float32)
        if self.features.ndim != 2 or len(self.features) == 0 or not np.isfinite(self.features).all():
            raise ValueError(f"features must be a finite float array [M >= 1, D]; got shape {list(self.features.shape)}")
        for name in ("labels", "predictions"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value).astype(np.int64)
                if value.shape != (len(self.features),):
                    raise ValueError(f"{name} must hold one class per reference ({len(self.features)}); "
                                     f"got shape {list(value.shape)}")
                setattr(self, name, value)
        self._nn = NearestNeighbors(metric=self.metric).fit(self.features)

    def __len__(self) -> int:
        return len(self.features)

    def kneighbors(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, indices)`` [N, k] of the ``k`` nearest references, nearest first."""
        return self._nn.kneighbors(np.asarray(queries, dtype=np.float32), n_neighbors=int(k))

    def distances(self, queries: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Distances [N, P] from ``queries`` to any ``points`` under this index's metric."""
        from sklearn.metrics import pairwise_distances

        return pairwise_distances(np.asarray(queries, np.float32), np.asarray(points, np.float32), metric=self.metric)

    def class_labels(self, by: str = "label") -> np.ndarray:
        """The labels (``by="label"``) or the model's predictions (``by="prediction"``)."""
        check_choice("by", by, ("label", "prediction"))
        out = self.labels if by == "label" else self.predictions
        if out is None:
            raise ValueError(f"by={by!r} needs references with {by}s; these ({self.source}) have none")
        return out


# a few indices per model, so repeated calls on one dataset compute its features once
_MEMO: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _version(model) -> int:
    return sum(p._version for p in model.parameters())


def example_index(model, references, *, labels=None, metric: str = "euclidean", batch_size: int = 64) -> ExampleIndex:
    """An :class:`ExampleIndex` of ``references`` in ``model``'s latent space.

    ``references``: a dataset of :mod:`medxai_lite.data` (labels from it unless ``labels`` is
    given), an image tensor ``[M, 3, H, W]``, a pair ``(images, labels)`` or an
    :class:`ExampleIndex` (returned as is, refitted when ``metric`` differs). The last few
    indices per model are kept in memory, so a dataset's features are computed once while the
    model's weights do not change.
    """
    from ..latent import penultimate_features

    check_choice("metric", metric, METRICS)
    if isinstance(references, ExampleIndex):
        return references if references.metric == metric else replace(references, metric=metric)
    if isinstance(references, tuple):
        if len(references) != 2 or labels is not None:
            raise ValueError("references as a tuple must be (images, labels)")
        references, labels = references
    is_dataset = hasattr(references, "batch") and hasattr(references, "classes")
    if not is_dataset and not (isinstance(references, torch.Tensor) and references.ndim == 4):
        raise ValueError("references must be None, 'batch', a dataset of medxai_lite.data, an image tensor "
                         f"[M, 3, H, W], a pair (images, labels) or an ExampleIndex; got {type(references).__name__}")
    if labels is not None:
        labels = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    memo = _MEMO.setdefault(model, [])
    stamp = (metric, _version(model), None if labels is None else labels.tobytes())
    for refs, key, index in memo:
        if refs is references and key == stamp:
            return index
    feats = penultimate_features(model, references, batch_size=batch_size, keep_images=False)
    if labels is None and is_dataset:
        labels = feats.labels
    index = ExampleIndex(feats.features, labels, feats.predictions, metric,
                         source=f"dataset {getattr(references, 'name', '')}".strip() if is_dataset else "tensor",
                         dataset=references if is_dataset else None)
    memo.append((references, stamp, index))
    del memo[:-4]
    return index


def training_split(model, seed: int = 0):
    """``(dataset, labels)``: the training split a model of this package was trained on, rebuilt
    from its ``report`` (dataset name, image size, size of the split, phantom knobs), and the
    labels it was trained with (``report.labels`` where they were changed, e.g. planted
    mislabels; else the dataset's). ``seed`` is the data seed of :func:`get_trained_model`, which
    its report does not record (default 0, the book's)."""
    from ..data import load_dataset

    report = getattr(model, "report", None)
    settings = getattr(report, "settings", None)
    if report is None or not isinstance(settings, dict) or not getattr(report, "dataset", None):
        raise ValueError("the model carries no training report (model.report from get_trained_model or "
                         "get_mislabelled_model), so its training split is unknown; pass the reference set explicitly")
    knobs = {k: settings[k] for k in ("difficulty", "shortcut", "class_balance") if k in settings}
    train = load_dataset(report.dataset, "train", image_size=settings["image_size"], n=settings["n_train"],
                         seed=getattr(report, "seed", seed), **knobs)
    labels = getattr(report, "labels", None)
    labels = train.labels if labels is None else np.asarray(labels, dtype=np.int64)
    if len(labels) != len(train):
        raise ValueError(f"the report's labels ({len(labels)}) do not match its training split ({len(train)})")
    return train, labels


def training_index(model, *, metric: str = "euclidean", seed: int = 0, rebuild: bool = False) -> ExampleIndex:
    """The :class:`ExampleIndex` of a trained model's own training split (:func:`training_split`).
    The features are cached beside the model, keyed by its ``report.cache_key`` (as the report
    retriever of :mod:`medxai_lite.models.text` is), so a later call runs no network."""
    from .._utils import atomic_path, cache_dir
    from ..models.explainers import _key

    check_choice("metric", metric, METRICS)
    train, labels = training_split(model, seed)
    key = _key({"kind": "example-index", "classifier": model.report.cache_key, "seed": seed,
                "labels": int(np.asarray(labels).sum()), "n": len(labels)})
    path = cache_dir("models") / f"{model.report.dataset}-example-index-{key}.npz"
    memo = _MEMO.setdefault(model, [])
    stamp = ("training", metric, _version(model), key)
    for refs, k, index in memo:
        if refs is None and k == stamp:
            return index
    if path.exists() and not rebuild:
        with np.load(path, allow_pickle=False) as z:
            features, predictions = z["features"], z["predictions"]
    else:
        from ..latent import penultimate_features

        feats = penultimate_features(model, train, keep_images=False)
        features, predictions = feats.features, feats.predictions
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, features=features, predictions=predictions)
    index = ExampleIndex(features, labels, predictions, metric, source=f"training split of {model.report.dataset}",
                         dataset=train)
    memo.append((None, stamp, index))
    del memo[:-4]
    return index


def _resolve(call, references, metric: str, batch_size: int, name: str = "references") -> tuple[ExampleIndex, np.ndarray]:
    """``(index of the references, features of the images explained)``."""
    check_choice("metric", metric, METRICS)
    queries, logits = _features(call.model, call.images, batch_size)
    if isinstance(references, str):
        if references != "batch":
            raise ValueError(f"{name} must be None, 'batch', a dataset, an image tensor, (images, labels) or an "
                             f"ExampleIndex; got the string {references!r}")
        predictions = logits.argmax(1)
        return ExampleIndex(queries, predictions, predictions, metric, source="batch"), queries
    if references is None:
        try:
            return training_index(call.model, metric=metric), queries
        except ValueError as exc:
            raise ValueError(f"{name}=None means the model's own training split, but {exc}: pass {name}= a dataset, "
                             "an image tensor, (images, labels), an ExampleIndex or 'batch'") from None
    return example_index(call.model, references, metric=metric, batch_size=batch_size), queries


# --------------------------------------------------------------------------- nearest examples
@register("nearest_examples", title="Nearest training examples", family=_EX, library="scikit-learn",
          needs_gradients=False, cost="fast", output="examples",
          paper="Cover & Hart 1967, Nearest neighbor pattern classification (IEEE Trans. Inf. Theory); "
                "Papernot & McDaniel 2018, Deep k-Nearest Neighbors: Towards Confident, Interpretable and Robust "
                "Deep Learning (arXiv:1803.04765)",
          presets={"quick": {"references": "batch", "k": 2}, "book": {"references": None, "k": 5}})
def _nearest(call, k: int = 5, references=None, metric: str = "euclidean", batch_size: int = 64):
    """The ``k`` reference images nearest to each image in the model's latent space.

    :math:`\\mathrm{NN}_k(x) = \\arg\\mathrm{sort}_j\\, d(\\mathrm{ENC}(x), \\mathrm{ENC}(r_j))[:k]`, with
    ``metric`` :math:`d` Euclidean or cosine (scikit-learn ``NearestNeighbors``, exact search).
    ``value``: ``indices`` and ``distances`` [N, k'] with ``k' = min(k, M)``, and ``labels`` (the
    neighbours' classes) when the references have labels. ``extras``: ``source``, ``metric``,
    ``reference_size`` and ``dataset`` (whose items are the pictures, when there is one).
    """
    k = _int("k", k)
    index, queries = _resolve(call, references, metric, _int("batch_size", batch_size))
    distances, indices = index.kneighbors(queries, min(k, len(index)))
    value = {"indices": indices, "distances": distances}
    if index.labels is not None:
        value["labels"] = index.labels[indices]
    return AdapterResult(value=value, extras={"source": index.source, "metric": metric, "reference_size": len(index),
                                              "dataset": index.dataset})


# --------------------------------------------------------------------------- prototypes
@dataclass
class Prototypes:
    """Class prototypes in a latent space: ``centres`` [P, D], their ``classes`` [P], the reference
    image nearest to each (``pictures`` [P], indices into the references) and how many references
    each stands for (``sizes`` [P])."""
    centres: np.ndarray
    classes: np.ndarray
    pictures: np.ndarray
    sizes: np.ndarray


def class_prototypes(index: ExampleIndex, labels=None, n_per_class: int = 1, seed: int = 0) -> Prototypes:
    """Prototypes of every class present in ``labels`` (default: the index's labels).

    With ``n_per_class = 1`` a class's prototype is the mean of its features,
    :math:`\\mathrm{proto}_c = \\frac{1}{|R_c|} \\sum_{r \\in R_c} \\mathrm{ENC}(r)`; with more, the
    centres of k-means (scikit-learn ``KMeans``, ``seed``) on the class's features (fewer when
    the class has fewer references). Each prototype's picture is the reference of its class
    nearest to it.
    """
    from sklearn.cluster import KMeans

    n_per_class = _int("n_per_class", n_per_class)
    labels = index.class_labels("label") if labels is None else np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(index),):
        raise ValueError(f"labels must hold one class per reference ({len(index)}); got shape {list(labels.shape)}")
    centres, classes, pictures, sizes = [], [], [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        feats = index.features[members]
        m = min(n_per_class, len(members))
        if m == 1:
            found, assign = feats.mean(0, keepdims=True), np.zeros(len(members), int)
        else:
            km = KMeans(n_clusters=m, n_init=10, random_state=seed).fit(feats)
            found, assign = km.cluster_centers_.astype(np.float32), km.labels_
        near = index.distances(found, feats).argmin(1)
        for j in range(len(found)):
            centres.append(found[j])
            classes.append(int(c))
            pictures.append(int(members[near[j]]))
            sizes.append(int((assign == j).sum()))
    return Prototypes(np.stack(centres).astype(np.float32), np.asarray(classes, np.int64),
                      np.asarray(pictures, np.int64), np.asarray(sizes, np.int64))


@register("prototypes", title="Class prototypes", family=_EX, library="scikit-learn", needs_gradients=False,
          cost="fast", output="examples",
          paper="Snell, Swersky & Zemel 2017, Prototypical Networks for Few-shot Learning (NeurIPS): class means "
                "in an embedding space; Kim, Khanna & Koyejo 2016, Examples are not enough, learn to criticize (NeurIPS)",
          presets={"quick": {"references": "batch"}, "book": {"references": None}})
def _prototypes(call, n_per_class: int = 1, k: int | None = None, references=None, by: str = "label",
                metric: str = "euclidean", batch_size: int = 64):
    """Class prototypes in the latent space (:func:`class_prototypes`), nearest first for each image.

    ``by``: the classes of the references are their labels (``"label"``) or the model's
    predictions (``"prediction"``; ``references="batch"`` has only those). ``k``: how many
    prototypes per image (default all). ``value``: ``indices`` (each prototype's picture, an
    index into the references), ``distances`` (from the image to the prototype itself),
    ``classes`` and ``prototype`` (its row in ``extras["prototypes"]``) [N, k]. ``extras``:
    ``prototypes`` (a :class:`Prototypes`), ``source``, ``metric``, ``dataset``.
    """
    check_choice("by", by, ("label", "prediction"))
    index, queries = _resolve(call, references, metric, _int("batch_size", batch_size))
    protos = class_prototypes(index, index.class_labels(by), n_per_class, _seed())
    d = index.distances(queries, protos.centres)
    order = np.argsort(d, axis=1, kind="stable")
    if k is not None:
        order = order[:, :_int("k", k)]
    value = {"indices": protos.pictures[order], "distances": np.take_along_axis(d, order, 1),
             "classes": protos.classes[order], "prototype": order}
    return AdapterResult(value=value, extras={"prototypes": protos, "source": index.source, "metric": metric,
                                              "dataset": index.dataset})


# --------------------------------------------------------------------------- searches for made images
def _box(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel bounds of a valid image in the normalised space: [0, 1] after denormalisation
    (ImageNet statistics, 3 channels), widened to include ``x`` itself."""
    from ..data.base import IMAGENET_MEAN, IMAGENET_STD

    if x.shape[1] == 3:
        mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        lo, hi = -mean / std, (1 - mean) / std
    else:
        lo, hi = x.amin(), x.amax()
    return torch.minimum(lo.expand_as(x), x), torch.maximum(hi.expand_as(x), x)


def _margin(out: torch.Tensor, t0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``([f(x)]_{t0}, max_{i != t0} [f(x)]_i)`` per image."""
    own = out.gather(1, t0[:, None])[:, 0]
    other = out.scatter(1, t0[:, None], float("-inf")).amax(1)
    return own, other


def _shifted_argmax(out: torch.Tensor, t0: torch.Tensor, shift: float) -> torch.Tensor:
    """argmax after adding ``shift`` to the class ``t0``'s score (alibi's ``kappa`` check)."""
    return out.detach().scatter_add(1, t0[:, None], torch.full_like(out[:, :1], float(shift))).argmax(1)


def _search(objective, shape, project, *, beta: float, c: float, steps: int, lr: float, c_steps: int,
            optimizer: str, device, dtype):
    r"""Minimise :math:`c \cdot L(\delta) + E(\delta) + \beta \|\delta\|_1 + \|\delta\|_2^2` per image
    over ``steps`` iterations, ``c_steps`` times with :math:`c` bisected per image (raised 10-fold
    while no solution is found, halved towards the last failure once one is: Carlini & Wagner's
    search, which CEM and the prototype counterfactuals use). ``objective(delta)`` returns
    ``(L [N], E [N], success [N] bool, predicted class [N])``; ``project`` maps a step back into
    the feasible set. ``"adam"``: Adam on :math:`\delta`, projected after each step; ``"fista"``:
    FISTA (Beck & Teboulle 2009) with the proximal step of the L1 term (soft thresholding
    :math:`S_{\alpha\beta}`) and a square-root decay of the step :math:`\alpha`, as in CEM.
    Returns the feasible :math:`\delta` with the smallest :math:`\beta\|\delta\|_1 + \|\delta\|_2^2`
    that succeeded (the last iterate where none did), whether one did, its class and the ``c`` it
    was found with (where none was: the next ``c`` the search would try).
    """
    n = shape[0]
    c_now = torch.full((n,), float(c), device=device, dtype=dtype)
    c_lo, c_hi = torch.zeros_like(c_now), torch.full_like(c_now, float("inf"))
    best = torch.zeros(shape, device=device, dtype=dtype)
    best_cost = torch.full((n,), float("inf"), device=device, dtype=dtype)
    best_class = torch.full((n,), -1, device=device, dtype=torch.long)
    best_c = c_now.clone()
    last, last_class = best.clone(), best_class.clone()

    def cost(d):
        return beta * d.abs().flatten(1).sum(1) + d.pow(2).flatten(1).sum(1)

    def record(d, success, cls, hit):
        nonlocal best, best_cost, best_class, best_c
        e = cost(d)
        better = success & (e < best_cost)
        best = torch.where(better.view(-1, *[1] * (d.dim() - 1)), d, best)
        best_cost = torch.where(better, e, best_cost)
        best_class = torch.where(better, cls, best_class)
        best_c = torch.where(better, c_now, best_c)
        hit |= success

    for _ in range(c_steps):
        hit = torch.zeros(n, dtype=torch.bool, device=device)
        if optimizer == "adam":
            delta = torch.zeros(shape, device=device, dtype=dtype, requires_grad=True)
            opt = torch.optim.Adam([delta], lr=lr)
            for _ in range(steps):
                pred, extra, success, cls = objective(delta)
                record(delta.detach(), success, cls, hit)
                loss = (c_now * pred + extra + cost(delta)).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    delta.copy_(project(delta))
            final = delta.detach()
        else:
            x_k = torch.zeros(shape, device=device, dtype=dtype)
            y = x_k.clone()
            for it in range(steps):
                alpha = lr * (1 - it / steps) ** 0.5
                y.requires_grad_(True)
                pred, extra, _, _ = objective(y)
                smooth = (c_now * pred + extra + y.pow(2).flatten(1).sum(1)).sum()
                grad, = torch.autograd.grad(smooth, y)
                with torch.no_grad():
                    z = y - alpha * grad
                    x_new = project(torch.sign(z) * (z.abs() - alpha * beta).clamp_min(0))
                    y = project(x_new + it / (it + 3) * (x_new - x_k))
                    x_k = x_new
                    _, _, success, cls = objective(x_new)
                record(x_new, success, cls, hit)
            final = x_k
        with torch.no_grad():
            _, _, success, cls = objective(final)
        record(final, success, cls, hit)
        last, last_class = final, cls
        c_hi = torch.where(hit, torch.minimum(c_hi, c_now), c_hi)
        c_lo = torch.where(hit, c_lo, torch.maximum(c_lo, c_now))
        c_now = torch.where(torch.isinf(c_hi), c_now * 10, (c_lo + c_hi) / 2)
    found = torch.isfinite(best_cost)
    out = torch.where(found.view(-1, *[1] * (len(shape) - 1)), best, last)
    return out.detach(), found, torch.where(found, best_class, last_class), torch.where(found, best_c, c_now)


def _check_number(name: str, value, minimum: float = 0.0, strict: bool = False) -> float:
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool) and \
        (value > minimum if strict else value >= minimum)
    if not ok:
        raise ValueError(f"{name} must be a number {'>' if strict else '>='} {minimum}; got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- prototype counterfactuals
@register("counterfactual_proto", title="Counterfactuals guided by prototypes", family=_EX, library="torch",
          needs_gradients=True, cost="slow", sign="positive",
          paper="Van Looveren & Klaise 2021, Interpretable Counterfactual Explanations Guided by Prototypes (ECML PKDD)",
          presets={"quick": {"references": "batch", "steps": 30, "c_steps": 1},
                   # the chapter's CPU budget: 2 rounds of 40 Adam steps instead of 2 x 100 (see BOOK_SEARCH)
                   "book": {"references": None, **BOOK_SEARCH}})
def _counterfactual_proto(call, references=None, beta: float = 0.1, theta: float = 1.0, c: float = 10.0,
                          kappa: float = 0.0, k_proto: int = 5, steps: int = 100, lr: float = 0.01, c_steps: int = 2,
                          batch_size: int = 64):
    r"""Counterfactuals guided by prototypes: the smallest change that flips the prediction,
    pulled towards the nearest other class's prototype.

    Van Looveren & Klaise (2021), eq. (1)-(6) without the autoencoder term
    :math:`L_{AE}` (no autoencoder here):

    .. math:: \min_\delta\; c\,L_{pred} + \beta \|\delta\|_1 + \|\delta\|_2^2 + \theta\, L_{proto},
    .. math:: L_{pred} = \max\big([f(x_0+\delta)]_{t_0} - \max_{i \ne t_0} [f(x_0+\delta)]_i,\; -\kappa\big),
    .. math:: L_{proto} = \|\mathrm{ENC}(x_0 + \delta) - \mathrm{proto}_j\|_2^2
              \,/\, \|\mathrm{ENC}(x_0) - \mathrm{proto}_j\|_2^2,

    with :math:`f` the logits, :math:`t_0` the explained class, :math:`\mathrm{ENC}` the latent
    space, :math:`\mathrm{proto}_i` the mean of the ``k_proto`` references of class :math:`i`
    nearest to :math:`\mathrm{ENC}(x_0)` (the paper's :math:`K`; classes from the references'
    labels) and :math:`j = \arg\min_{i \ne t_0} \|\mathrm{ENC}(x_0) - \mathrm{proto}_i\|_2` the
    target. :math:`L_{proto}` is divided by its value at :math:`\delta = 0` (so ``theta`` means
    the same on every network's feature scale; the paper's is unnormalised). Optimised with Adam
    on :math:`\delta` for ``steps`` steps, ``c_steps`` rounds of the search over ``c``
    (:func:`_search`); the counterfactual kept is the flipped one
    (:math:`\arg\max_i [f]_i \ne t_0` after adding ``kappa`` to class :math:`t_0`) with the
    smallest :math:`\beta\|\delta\|_1 + \|\delta\|_2^2`. Without a reference of another class
    the target is the runner-up class and :math:`\theta` is 0 for that image.

    Map: :math:`\sum_{ch} |x_{cf} - x_0|`. ``extras``: ``counterfactual`` [N, C, H, W] (normalised),
    ``counterfactual_class``, ``target_class``, ``flipped``, ``l1`` and ``l2`` (of :math:`\delta`,
    normalised units), ``proto_distance`` (:math:`\|\mathrm{ENC}(x_{cf}) - \mathrm{proto}_j\|_2`),
    ``target_source`` ("prototype" or "runner-up") and ``c`` per image; ``proto_distance_start``
    (:math:`\|\mathrm{ENC}(x_0) - \mathrm{proto}_j\|_2`, where the search started),
    ``target_picture`` (the reference of class :math:`j` nearest to :math:`\mathrm{proto}_j`, an
    index into the references; -1 for a runner-up target), ``reference_source`` and ``dataset``
    (the references' dataset, when there is one).
    """
    beta, theta, c = _check_number("beta", beta), _check_number("theta", theta), _check_number("c", c, strict=True)
    kappa, lr = _check_number("kappa", kappa), _check_number("lr", lr, strict=True)
    steps, c_steps, k_proto = _int("steps", steps), _int("c_steps", c_steps), _int("k_proto", k_proto)
    x = call.images
    t0 = call.require_targets()
    index, queries = _resolve(call, references, "euclidean", _int("batch_size", batch_size))
    labels = index.labels if index.labels is not None else index.predictions
    with torch.no_grad():
        logits = call.model(x)
    protos = np.zeros_like(queries)
    target = np.zeros(len(x), np.int64)
    picture = np.full(len(x), -1, np.int64)
    source = []
    for i, (q, t) in enumerate(zip(queries, t0.tolist())):
        best = None
        for cls in np.unique(labels):
            if cls == t:
                continue
            members = np.flatnonzero(labels == cls)
            feats = index.features[members]
            d = np.linalg.norm(feats - q, axis=1)
            proto = feats[np.argsort(d, kind="stable")[:k_proto]].mean(0)
            dist = float(np.linalg.norm(proto - q))
            if best is None or dist < best[0]:
                best = (dist, int(cls), proto, int(members[np.linalg.norm(feats - proto, axis=1).argmin()]))
        if best is None:
            target[i] = int(logits[i].scatter(0, torch.tensor([t], device=x.device), float("-inf")).argmax())
            source.append("runner-up")
        else:
            target[i], protos[i], picture[i] = best[1], best[2], best[3]
            source.append("prototype")
    proto_t = torch.as_tensor(protos, device=x.device, dtype=x.dtype)
    weight = torch.tensor([theta if s == "prototype" else 0.0 for s in source], device=x.device, dtype=x.dtype)
    start = (torch.as_tensor(queries, device=x.device, dtype=x.dtype) - proto_t).pow(2).sum(1).clamp_min(1e-12)
    lo, hi = _box(x)

    def objective(delta):
        out, enc = _encode(call.model, x + delta)
        own, other = _margin(out, t0)
        pred = (own - other).clamp_min(-kappa)
        proto = weight * (enc - proto_t).pow(2).sum(1) / start
        # success by the kappa margin; the class reported is the model's own (the two differ only on failure)
        return pred, proto, _shifted_argmax(out, t0, kappa) != t0, out.argmax(1)

    delta, flipped, cls, c_final = _search(objective, x.shape, lambda d: torch.clamp(x + d, lo, hi) - x, beta=beta,
                                           c=c, steps=steps, lr=lr, c_steps=c_steps, optimizer="adam",
                                           device=x.device, dtype=x.dtype)
    cf = x + delta
    with torch.no_grad():
        _, enc = _encode(call.model, cf)
    return AdapterResult(raw=delta.abs().sum(1), extras={
        "counterfactual": cf.cpu().numpy(), "counterfactual_class": cls.cpu().numpy(), "target_class": target,
        "flipped": flipped.cpu().numpy(), "l1": delta.abs().flatten(1).sum(1).cpu().numpy(),
        "l2": delta.flatten(1).norm(dim=1).cpu().numpy(),
        "proto_distance": np.where(np.asarray(source) == "prototype",
                                   (enc - proto_t).norm(dim=1).cpu().numpy(), np.nan),
        "proto_distance_start": np.where(np.asarray(source) == "prototype", np.sqrt(start.cpu().numpy()), np.nan),
        "target_picture": picture, "target_source": source, "c": c_final.cpu().numpy(),
        "reference_source": index.source, "dataset": index.dataset})


# --------------------------------------------------------------------------- CEM
def _cem(call, mode: str, baseline, beta, c, kappa, steps, lr, c_steps):
    from ..baselines import make_baseline

    beta, c = _check_number("beta", beta), _check_number("c", c, strict=True)
    kappa, lr = _check_number("kappa", kappa), _check_number("lr", lr, strict=True)
    steps, c_steps = _int("steps", steps), _int("c_steps", c_steps)
    x = call.images
    t0 = call.require_targets()
    b = make_baseline(x, baseline, choices=("black", "zero", "mean"))
    lo, hi = _box(x)
    if mode == "pp":
        a = x - b
        low, high = torch.minimum(a, torch.zeros_like(a)), torch.maximum(a, torch.zeros_like(a))

        def shown(delta):
            return b + delta

        def objective(delta):
            out = call.model(b + delta)
            own, other = _margin(out, t0)
            return (other - own).clamp_min(-kappa), torch.zeros_like(own), _shifted_argmax(out, t0, -kappa) == t0, \
                out.argmax(1)
    else:
        up = x >= b                       # away from the baseline: brighter than a black baseline
        low = torch.where(up, torch.zeros_like(x), lo - x)
        high = torch.where(up, hi - x, torch.zeros_like(x))

        def shown(delta):
            return x + delta

        def objective(delta):
            out = call.model(x + delta)
            own, other = _margin(out, t0)
            return (own - other).clamp_min(-kappa), torch.zeros_like(own), _shifted_argmax(out, t0, kappa) != t0, \
                out.argmax(1)

    delta, found, cls, c_final = _search(objective, x.shape, lambda d: torch.clamp(d, low, high), beta=beta, c=c,
                                         steps=steps, lr=lr, c_steps=c_steps, optimizer="fista", device=x.device,
                                         dtype=x.dtype)
    return AdapterResult(raw=delta.abs().sum(1), extras={
        mode: shown(delta).cpu().numpy(), "delta": delta.cpu().numpy(), "class": cls.cpu().numpy(),
        "found": found.cpu().numpy(), "l1": delta.abs().flatten(1).sum(1).cpu().numpy(),
        "l2": delta.flatten(1).norm(dim=1).cpu().numpy(), "baseline": b.cpu().numpy(), "c": c_final.cpu().numpy()})


_CEM_PAPER = ("Dhurandhar et al. 2018, Explanations based on the Missing: Towards Contrastive Explanations with "
              "Pertinent Negatives (NeurIPS)")
_CEM_QUICK = {"steps": 15, "c_steps": 3}


@register("cem_pp", title="CEM pertinent positive", family=_EX, library="torch", needs_gradients=True, cost="slow",
          paper=_CEM_PAPER, presets={"quick": _CEM_QUICK, "book": BOOK_SEARCH})
def _cem_pp(call, baseline="black", beta: float = 0.1, c: float = 10.0, kappa: float = 0.0, steps: int = 100,
            lr: float = 0.01, c_steps: int = 2):
    r"""CEM pertinent positive: the smallest part of the image that, alone, keeps the class.

    Dhurandhar et al. (2018), eq. (3) without the autoencoder term :math:`\gamma L_{AE}`:

    .. math:: \min_{\delta}\; c \cdot \max\big(\max_{i \ne t_0} [f(b + \delta)]_i - [f(b + \delta)]_{t_0},
              -\kappa\big) + \beta \|\delta\|_1 + \|\delta\|_2^2

    over :math:`\delta` between 0 and :math:`x_0 - b` in every pixel (a part of what the image
    has), where *absence* is the ``baseline`` :math:`b`: ``"black"`` (default: each channel's
    darkest value in the image, 0 in [0, 1] space for an image with a black background, the
    paper's "absent" pixel), ``"zero"`` (the dataset's mean colour) or ``"mean"`` (the image's
    own mean colour). Solved with FISTA and the search over ``c`` (:func:`_search`); kept: the
    sparsest :math:`\delta` for which :math:`b + \delta` is still class :math:`t_0` with margin
    ``kappa``. An empty pertinent positive (the baseline alone already is class :math:`t_0`)
    gives an all-zero map.

    Map: :math:`\sum_{ch} |\delta|`. ``extras``: ``pp`` (the image :math:`b + \delta`), ``delta``,
    ``class`` (of ``pp``), ``found``, ``l1``, ``l2``, ``baseline``, ``c``.
    """
    return _cem(call, "pp", baseline, beta, c, kappa, steps, lr, c_steps)


@register("cem_pn", title="CEM pertinent negative", family=_EX, library="torch", needs_gradients=True, cost="slow",
          paper=_CEM_PAPER, presets={"quick": _CEM_QUICK, "book": BOOK_SEARCH})
def _cem_pn(call, baseline="black", beta: float = 0.1, c: float = 10.0, kappa: float = 0.0, steps: int = 100,
            lr: float = 0.01, c_steps: int = 2):
    r"""CEM pertinent negative: the smallest addition, absent from the image, that would change the class.

    Dhurandhar et al. (2018), eq. (1) without the autoencoder term :math:`\gamma L_{AE}`:

    .. math:: \min_{\delta}\; c \cdot \max\big([f(x_0 + \delta)]_{t_0} - \max_{i \ne t_0} [f(x_0 + \delta)]_i,
              -\kappa\big) + \beta \|\delta\|_1 + \|\delta\|_2^2

    where :math:`\delta` only *adds* signal: it moves each pixel away from the ``baseline``
    :math:`b` (the "absent" value, as for ``cem_pp``; with ``"black"``: brighter), and
    :math:`x_0 + \delta` stays a valid image. Solved with FISTA and the search over ``c``;
    kept: the sparsest :math:`\delta` for which :math:`x_0 + \delta` is no longer class
    :math:`t_0` (margin ``kappa``). The absence of what :math:`\delta` adds is why the
    prediction is :math:`t_0` and not ``class``.

    Map: :math:`\sum_{ch} |\delta|`. ``extras``: ``pn`` (the image :math:`x_0 + \delta`), ``delta``,
    ``class`` (of ``pn``), ``found``, ``l1``, ``l2``, ``baseline``, ``c``.
    """
    return _cem(call, "pn", baseline, beta, c, kappa, steps, lr, c_steps)


# --------------------------------------------------------------------------- L2X
@register("l2x", title="L2X (learning to explain)", family=_EX, library="torch", needs_gradients=False,
          cost="slow", sign="positive",
          paper="Chen, Song, Wainwright & Jordan 2018, Learning to Explain: An Information-Theoretic Perspective on "
                "Model Interpretation (ICML)",
          presets={"quick": {"train": "batch", "patch": 4, "epochs": 60, "approximator": "classifier"},
                   "book": BOOK_L2X})
def _l2x(call, k: int = 4, patch: int = 8, train=None, explainer=None, epochs: int = 20, approximator: str = "learned",
         baseline="zero", width: int | None = None, batch_size: int | None = None, lr: float | None = None,
         tau: float | None = None):
    r"""L2X: the ``k`` patches (of a ``patch``-pixel grid) a trained explainer keeps for each image.

    The explainer maximises the paper's variational bound on the mutual information between the
    kept patches and the classifier's output, :math:`\max_{\theta,\phi} \mathbb E[\sum_y P_m(y|x)
    \log q_\phi(y | V(\theta,\zeta) \odot x)]`, with the Gumbel-softmax relaxation of choosing
    ``k`` patches, :math:`V_i = \max_{j \le k} \mathrm{softmax}_i((\log p + G^j)/\tau)`
    (:mod:`medxai_lite.models.explainers`). ``train=None``: trained once on the model's own
    training split and cached (:func:`~medxai_lite.models.explainers.get_trained_l2x`; needs a
    model with a training report); a dataset or tensor: trained on it now; ``"batch"``: trained on
    the images explained (the quick preset; ``epochs`` passes). ``explainer``: a trained
    :class:`~medxai_lite.models.explainers.L2X` (then ``k``, ``patch``, ``train``, ``epochs``,
    ``approximator`` and ``baseline`` are its own). ``approximator``: ``"learned"`` (the paper's
    :math:`q_\phi`) or ``"classifier"`` (:math:`q` is the classifier itself). ``width``,
    ``batch_size``, ``lr``, ``tau``: training settings of
    :func:`~medxai_lite.models.explainers.train_l2x` (``None``: its defaults,
    :data:`~medxai_lite.models.explainers.L2X_SETTINGS`).

    Map: the kept patches (1) and the rest (0). ``extras``: ``probabilities`` [N, gh, gw] (the
    explainer's softmax over patches), ``selected`` [N, k] (patch indices, row-major),
    ``explainer`` (the :class:`~medxai_lite.models.explainers.L2X`, with its ``report``).
    """
    from ..models.explainers import L2X, get_trained_l2x, train_l2x

    if explainer is not None:
        if not isinstance(explainer, L2X):
            raise ValueError(f"explainer must be a trained medxai_lite.models.explainers.L2X; got "
                             f"{type(explainer).__name__}")
    else:
        k, patch, epochs = _int("k", k), _int("patch", patch), _int("epochs", epochs)
        check_choice("approximator", approximator, ("learned", "classifier"))
        options = dict(k=k, patch=patch, epochs=epochs, approximator=approximator, baseline=baseline)
        if width is not None:
            options["width"] = _int("width", width)
        if batch_size is not None:
            options["batch_size"] = _int("batch_size", batch_size)
        for name, value in (("lr", lr), ("tau", tau)):
            if value is not None:
                options[name] = _check_number(name, value, strict=True)
        if isinstance(train, str) and train != "batch":
            raise ValueError(f"train must be None, 'batch', a dataset or an image tensor; got the string {train!r}")
        if train is None:
            try:
                explainer = get_trained_l2x(call.model, **options)
            except ValueError as exc:
                if "training report" not in str(exc):
                    raise
                raise ValueError(f"train=None means the model's own training split, but {exc}; pass train= a "
                                 "dataset, an image tensor or 'batch'") from None
        else:
            images = call.images if isinstance(train, str) else train
            explainer = train_l2x(call.model, images, seed=_seed(), **options)
    explainer.to(call.images.device)
    probs, kept = explainer.select(call.images)
    gh, gw = explainer.grid(call.size)
    return AdapterResult(raw=explainer.upsample(kept, call.size)[:, 0], extras={
        "probabilities": probs.reshape(-1, gh, gw).cpu().numpy(),
        "selected": kept.topk(explainer.k, dim=1).indices.sort(1).values.cpu().numpy(), "explainer": explainer})


# --------------------------------------------------------------------------- influence (TracIn)
class _Pairs(torch.utils.data.Dataset):
    """``(image, label)`` items for captum's DataLoader, from a dataset or a tensor, with any labels,
    on ``device`` (captum passes its batches to the model as they come, so they must be on the
    model's device already)."""

    def __init__(self, data, labels, device="cpu"):
        self.device = torch.device(device)
        # a tensor and the labels go to the device once; a dataset's items one by one as read
        self.data = data.to(self.device) if isinstance(data, torch.Tensor) else data
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=self.device)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        if isinstance(self.data, torch.Tensor):
            return self.data[i], self.labels[i]
        return self.data[i]["image"].to(self.device), self.labels[i]


def _training_set(model, images: torch.Tensor | None, train, labels):
    """``(items, labels, source)`` of a training set given as ``train`` (see ``influence``)."""
    if isinstance(train, str):
        if train != "batch" or images is None:
            raise ValueError(f"train must be None, 'batch', a dataset, an image tensor or (images, labels); got the "
                             f"string {train!r}")
        with torch.no_grad():
            predicted = model(images).argmax(1).cpu().numpy()
        data, known, source = images.detach().cpu(), predicted, "batch (predicted labels)"
    elif train is None:
        try:
            data, known = training_split(model)
        except ValueError as exc:
            raise ValueError(f"train=None means the model's own training split, but {exc}: pass train= a dataset, "
                             "(images, labels) or 'batch'") from None
        source = f"training split of {model.report.dataset}"
    else:
        if isinstance(train, tuple):
            if len(train) != 2:
                raise ValueError("train as a tuple must be (images, labels)")
            train, known = train
        else:
            known = getattr(train, "labels", None)
        if not (hasattr(train, "batch") and hasattr(train, "classes")) and \
                not (isinstance(train, torch.Tensor) and train.ndim == 4):
            raise ValueError(f"train must be None, 'batch', a dataset, an image tensor or (images, labels); got "
                             f"{type(train).__name__}")
        data = train.detach().cpu() if isinstance(train, torch.Tensor) else train
        source = "tensor" if isinstance(train, torch.Tensor) else f"dataset {getattr(train, 'name', '')}".strip()
    if labels is not None:
        known = labels
    if known is None:
        raise ValueError("labels are required for an unlabelled image tensor: pass train=(images, labels) or labels=")
    known = np.asarray(known.detach().cpu() if isinstance(known, torch.Tensor) else known).astype(np.int64)
    if known.shape != (len(data),):
        raise ValueError(f"labels must hold one class per training image ({len(data)}); got shape {list(known.shape)}")
    return data, known, source


@contextlib.contextmanager
def _quiet_captum():
    """captum's TracInCP asks for input gradients it does not use and says so once per batch."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input Tensor .* did not already require gradients")
        yield


def _loss(loss):
    if loss == "cross_entropy":
        return torch.nn.CrossEntropyLoss(reduction="sum")
    if isinstance(loss, torch.nn.Module) and getattr(loss, "reduction", None) in ("sum", "mean"):
        return loss
    raise ValueError("loss must be 'cross_entropy' or a torch loss module with reduction 'sum' or 'mean' "
                     f"(e.g. nn.NLLLoss(reduction='sum')); got {loss!r}")


#: What the influence gradients cover: the last linear layer or every parameter.
SCOPES = ("head", "all")
#: How influence is estimated: TracIn (gradient dot products) or Koh & Liang's influence function.
ESTIMATORS = ("tracin", "influence_function")
#: Damping added to the Hessian's diagonal before it is inverted (``estimator="influence_function"``).
HESSIAN_DAMPING = 1e-3


def _tracin(model, data, labels, *, scope: str, loss, learning_rate: float, batch_size: int,
            estimator: str = "tracin"):
    """A captum influence object over ``(data, labels)`` with one checkpoint, the model as it is."""
    from captum.influence import NaiveInfluenceFunction, TracInCP, TracInCPFast

    from ..latent import classifier_head

    check_choice("scope", scope, SCOPES)
    check_choice("estimator", estimator, ESTIMATORS)
    loss_fn = _loss(loss)
    pairs = _Pairs(data, labels, model_device(model))

    def keep_weights(model, checkpoint):       # the one "checkpoint" is the model as given
        return learning_rate

    head = classifier_head(model)
    if estimator == "influence_function":
        if scope != "head":
            raise ValueError("scope='all' with estimator='influence_function' would form the Hessian of every "
                             "parameter; use scope='head' (the last linear layer's Hessian)")
        name = next(n for n, m in model.named_modules() if m is head)
        for p in head.parameters():
            p.requires_grad_(True)
        return NaiveInfluenceFunction(model, pairs, "final", checkpoints_load_func=keep_weights, layers=[name],
                                      loss_fn=loss_fn, batch_size=batch_size, sample_wise_grads_per_batch=True,
                                      projection_dim=sum(p.numel() for p in head.parameters()),
                                      hessian_reg=HESSIAN_DAMPING)
    if scope == "head":
        return TracInCPFast(model, head, pairs, ["final"], checkpoints_load_func=keep_weights,
                            loss_fn=loss_fn, batch_size=batch_size)
    for p in model.parameters():
        p.requires_grad_(True)
    return TracInCP(model, pairs, ["final"], checkpoints_load_func=keep_weights, loss_fn=loss_fn,
                    batch_size=batch_size, sample_wise_grads_per_batch=True)


def _head_tracin(model, features: np.ndarray, labels: np.ndarray, *, loss, learning_rate: float, batch_size: int):
    """captum ``TracInCPFast`` on the classifier head alone, over training *features* (the head's
    inputs) rather than images: the same scores as :func:`_tracin` with ``scope="head"``, whose
    gradients involve nothing below the head, without a pass of the network over the training set."""
    from captum.influence import TracInCPFast

    from ..latent import classifier_head

    head = classifier_head(model)
    param = next(head.parameters())
    pairs = torch.utils.data.TensorDataset(
        torch.as_tensor(np.asarray(features), dtype=param.dtype, device=param.device),
        torch.as_tensor(np.asarray(labels), dtype=torch.long, device=param.device))

    def keep_weights(module, checkpoint):       # the one "checkpoint" is the head as it is
        return learning_rate

    return TracInCPFast(head, head, pairs, ["final"], checkpoints_load_func=keep_weights, loss_fn=_loss(loss),
                        batch_size=batch_size)


def _index_features(model, images: torch.Tensor, train, labels, batch_size: int):
    """``(features [M, D], labels [M], source)`` of a training set given as ``train`` (as for
    ``influence``), read from the example index: cached on disk for ``train=None``
    (:func:`training_index`), kept in memory per model otherwise (:func:`example_index`)."""
    if train is None:
        try:
            index = training_index(model)
        except ValueError as exc:
            raise ValueError(f"train=None means the model's own training split, but {exc}: pass train= a dataset, "
                             "(images, labels) or 'batch'") from None
        known = index.labels if labels is None else labels
        known = np.asarray(known.detach().cpu() if isinstance(known, torch.Tensor) else known).astype(np.int64)
        if known.shape != (len(index),):
            raise ValueError(f"labels must hold one class per training image ({len(index)}); got shape "
                             f"{list(known.shape)}")
        return index.features, known, f"{index.source} (cached features)"
    data, known, source = _training_set(model, images, train, labels)
    return example_index(model, data, batch_size=batch_size).features, known, source


def influence_scores(model, images: torch.Tensor, targets, train, labels=None, *, scope: str = "head",
                     estimator: str = "tracin", loss="cross_entropy", learning_rate: float = 1.0,
                     batch_size: int = 64) -> np.ndarray:
    r"""TracIn influence [N, M] of every training image on the loss of every image at ``targets``:
    :math:`\mathrm{TracIn}(z, z') = \eta\, \nabla_w \ell(w, z) \cdot \nabla_w \ell(w, z')` at the
    final weights (one checkpoint; ``scope="head"``: the last linear layer's weights, captum
    ``TracInCPFast``; ``"all"``: every parameter, ``TracInCP``); ``estimator="influence_function"``:
    :math:`\nabla_w \ell(w, z')^\top H^{-1} \nabla_w \ell(w, z)` instead (see ``influence``). Positive: a gradient step on
    the training image :math:`z` lowers the loss on :math:`z'` (helpful); negative: harmful.
    The model's ``requires_grad`` flags and ``.grad`` are left as found."""
    from .registry import hook_guard

    images = images.to(model_device(model))
    data, known, _ = _training_set(model, images, train, labels)
    targets = torch.as_tensor(targets, dtype=torch.long, device=images.device)
    with hook_guard(model, freeze=False):
        tracin = _tracin(model, data, known, scope=scope, loss=loss, learning_rate=learning_rate,
                         batch_size=batch_size, estimator=estimator)
        with _quiet_captum():
            scores = tracin.influence((images, targets))
    return scores.detach().cpu().numpy().astype(np.float64)


def self_influence(model, train, labels=None, *, scope: str = "head", estimator: str = "tracin",
                   loss="cross_entropy", learning_rate: float = 1.0, batch_size: int = 64) -> np.ndarray:
    r"""TracIn self-influence of every training image, :math:`\eta \|\nabla_w \ell(w, z)\|^2` at the
    final weights (captum ``self_influence``), float [M]. Pruthi et al. (2020) rank training
    images by it to find mislabelled ones: an image whose label disagrees with what the model
    learnt keeps a large loss gradient. ``train``, ``labels``: as for ``influence``."""
    from .registry import hook_guard

    data, known, _ = _training_set(model, None, train, labels)
    with hook_guard(model, freeze=False):
        tracin = _tracin(model, data, known, scope=scope, loss=loss, learning_rate=learning_rate,
                         batch_size=batch_size, estimator=estimator)
        with _quiet_captum():
            scores = tracin.self_influence()
    return scores.detach().cpu().numpy().astype(np.float64)


@register("influence", title="Influence of training images (TracIn, influence functions)", family=_EX, library="captum",
          needs_gradients=True, cost="slow", output="examples",
          paper="Pruthi, Liu, Kale & Sundararajan 2020, Estimating Training Data Influence by Tracing Gradient "
                "Descent (NeurIPS); Koh & Liang 2017, Understanding Black-box Predictions via Influence Functions (ICML)",
          presets={"quick": {"train": "batch", "k": 2}, "book": {"train": None, "k": 5, "from_index": True}})
def _influence(call, k: int = 5, train=None, labels=None, scope: str = "head", estimator: str = "tracin",
               normalize: bool = False, loss="cross_entropy", learning_rate: float = 1.0, batch_size: int = 64,
               from_index: bool = False):
    r"""The training images that help, and that hurt, each prediction most: TracIn through
    ``captum.influence``.

    TracIn (Pruthi et al. 2020) sums over training checkpoints :math:`w_t` with learning rates
    :math:`\eta_t` the gradient dot products
    :math:`\mathrm{TracInCP}(z, z') = \sum_t \eta_t \nabla_w \ell(w_t, z) \cdot \nabla_w \ell(w_t, z')`.
    The book's models are trained without saving checkpoints, so **one checkpoint, the final
    model, is used**: the score is :math:`\eta\, \nabla_w \ell(w, z) \cdot \nabla_w \ell(w, z')` (the
    paper's TracInCP with a single checkpoint; ``learning_rate`` :math:`\eta` only scales it).
    ``scope="head"`` restricts :math:`w` to the last linear layer's weight matrix (captum
    ``TracInCPFast``, exact for it: :math:`(a^\top a')(g^\top g')` with :math:`a` the layer's input
    and :math:`g` the loss gradient at its output; the bias is left out); ``"all"`` uses every
    parameter (``TracInCP``).
    ``estimator="influence_function"`` gives Koh & Liang's (2017) influence function instead,
    :math:`\nabla_w \ell(w, z')^\top (H + \lambda I)^{-1} \nabla_w \ell(w, z)` with :math:`H` the
    Hessian of the summed training loss in the last linear layer's parameters (weights and bias;
    ``scope="head"`` only) and damping :math:`\lambda` = :data:`HESSIAN_DAMPING` (captum
    ``NaiveInfluenceFunction``, which forms and inverts that Hessian exactly; the sign is captum's:
    positive = helpful). It assumes a convex loss around :math:`w`, which a network's last layer
    has, but the features below it are held fixed.
    ``normalize=True`` divides each score by both self-influences,
    :math:`s(z, z') / \sqrt{s(z, z)\, s(z', z')}` (for TracIn the cosine of the two gradients, in
    [-1, 1]; Barshan et al. 2020's remedy for rankings that a few training images with large loss
    gradients top for every test image).
    :math:`z' = (x, t)` with :math:`t` the explained class; :math:`z` a training image with its
    training label. ``train``: ``None`` (the model's own training split and the labels it was
    trained with), a dataset, ``(images, labels)`` or ``"batch"`` (the images explained, labelled
    by the model's predictions); ``labels`` overrides the training labels; ``loss``:
    ``"cross_entropy"`` or a torch loss module (reduction sum or mean).
    ``from_index=True`` (``scope="head"``, TracIn only): run captum's ``TracInCPFast`` on the
    head alone over the training images' latent features, read from the example index
    (:func:`training_index`, cached on disk beside the model, for ``train=None``), instead of
    passing every training image through the network again. The gradients of the head's weights
    involve nothing below its input, so the scores are the same up to rounding; the cost drops
    from one network pass over the training set to none (after the index exists).

    ``value``: ``indices`` [N, k'] of the most helpful training images (highest influence first,
    ``k' = min(k, M)``), ``distances`` = minus their influence (so that the contract's "nearest
    first" order is "most helpful first"), ``scores`` (their influence). ``extras``:
    ``harmful_indices`` and ``harmful_scores`` (most negative first), ``source``, ``checkpoints``
    (1), ``scope``, ``estimator``, ``normalize``, ``training_labels``, ``from_index``.
    """
    k = _int("k", k)
    check_choice("scope", scope, SCOPES)
    check_choice("estimator", estimator, ESTIMATORS)
    if not isinstance(normalize, bool):
        raise ValueError(f"normalize must be True or False; got {normalize!r}")
    if not isinstance(from_index, bool):
        raise ValueError(f"from_index must be True or False; got {from_index!r}")
    if from_index and (scope != "head" or estimator != "tracin"):
        raise ValueError("from_index=True reads the head's inputs from the example index, which only TracIn on the "
                         f"last layer can use: it needs scope='head' and estimator='tracin'; got scope={scope!r}, "
                         f"estimator={estimator!r}")
    learning_rate = _check_number("learning_rate", learning_rate, strict=True)
    batch_size = _int("batch_size", batch_size)
    targets = call.require_targets()
    if from_index:
        features, known, source = _index_features(call.model, call.images, train, labels, batch_size)
        tracin = _head_tracin(call.model, features, known, loss=loss, learning_rate=learning_rate,
                              batch_size=batch_size)
        from ..latent import classifier_head

        head = classifier_head(call.model)
        queries, _ = _features(call.model, call.images, batch_size)
        inputs = (torch.as_tensor(queries, dtype=head.weight.dtype, device=head.weight.device), targets)
    else:
        data, known, source = _training_set(call.model, call.images, train, labels)
        tracin = _tracin(call.model, data, known, scope=scope, loss=loss, learning_rate=learning_rate,
                         batch_size=batch_size, estimator=estimator)
        inputs = (call.images, targets)
    with _quiet_captum():
        scores = tracin.influence(inputs).detach().cpu().numpy().astype(np.float64)
        if normalize:
            own = tracin.self_influence(inputs).detach().cpu().numpy().astype(np.float64)
            theirs = tracin.self_influence().detach().cpu().numpy().astype(np.float64)
            scores = scores / np.sqrt(np.clip(own[:, None] * theirs[None, :], 1e-30, None))
    k = min(k, scores.shape[1])
    helpful = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    harmful = np.argsort(scores, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(scores, helpful, 1)
    return AdapterResult(value={"indices": helpful, "distances": -top, "scores": top}, extras={
        "harmful_indices": harmful, "harmful_scores": np.take_along_axis(scores, harmful, 1), "source": source,
        "checkpoints": 1, "scope": scope, "estimator": estimator, "normalize": normalize, "training_labels": known,
        "from_index": from_index})
