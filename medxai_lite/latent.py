"""Latent-based explanations: a trained network's penultimate features, projected to two dimensions.

The survey's latent family (Dagnaw et al. 2025, Section 2.3) explains a model by the geometry of
its internal representation: which images the network puts close together. This module

- reads that representation, :func:`penultimate_features`: the input of the final linear layer
  (found from the zoo's :class:`~medxai_lite.models.zoo.ArchSpec`), with the labels,
  predictions, probabilities, concept labels, shortcut-artefact flags and display images of the
  same items, in a :class:`LatentFeatures`;
- projects it, :func:`project`: PCA (a linear reference), t-SNE (scikit-learn) and UMAP
  (umap-learn), each deterministic for a seed;
- measures how faithful a projection is, :func:`trustworthiness` and :func:`continuity`
  (Venna & Kaski 2001) and :func:`knn_accuracy`, and how much it depends on its settings,
  :func:`sensitivity_grid` and :func:`seed_stability`;
- measures cluster structure, :func:`cluster_separation` (silhouette scores), and builds test sets
  in which a shortcut artefact no longer follows the class, :func:`mix_features`, which is what it
  takes to tell an artefact cluster from a class cluster.

Example
-------
>>> feats = penultimate_features(model, load_dataset("phantom-skin", "test", image_size=96, n=300))  # doctest: +SKIP
>>> emb = project(feats, "umap", seed=0, n_neighbors=15, min_dist=0.1)                              # doctest: +SKIP
>>> trustworthiness(feats.features, emb, 10), continuity(feats.features, emb, 10)                   # doctest: +SKIP
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

from ._utils import check_choice, check_positive_int, model_device

__all__ = ["LatentFeatures", "Projections", "SeedStability", "PROJECTIONS", "TITLES", "classifier_head",
           "penultimate_features", "mix_features", "project", "trustworthiness", "continuity", "knn_accuracy",
           "projection_table", "sensitivity_grid", "seed_stability", "cluster_separation", "class_islands"]

#: The projections :func:`project` runs, and the settings each accepts (besides ``seed``).
PROJECTIONS = {
    "pca": (),
    "tsne": ("perplexity", "init", "early_exaggeration", "learning_rate", "max_iter", "metric", "angle"),
    "umap": ("n_neighbors", "min_dist", "spread", "metric", "n_epochs", "init"),
}

#: Titles of the projections in tables and on axes ("t-SNE 1", "UMAP 2"...).
TITLES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


# --------------------------------------------------------------------------------------------- features
@dataclass
class LatentFeatures:
    """Penultimate features of ``N`` images and everything needed to colour their projection.

    Attributes
    ----------
    features : float32 [N, D]
        The input of the network's final linear layer (``head(features) == logits``).
    logits : float32 [N, C]
    labels : int [N] or None
        True classes (``None`` for unlabelled images).
    classes : tuple of str
    images : uint8 [N, H, W, 3] or None
        The images as displayed (denormalised), for thumbnails.
    concepts : float32 [N, K] or None, and ``concept_names`` (K names)
    artefact : bool [N] or None
        Whether each image carries the dataset's shortcut artefact (phantoms: ``meta["artefact"]``).
    index : int [N]
        Position of each item in its dataset.
    dataset, modality : str
    """

    features: np.ndarray
    logits: np.ndarray
    labels: np.ndarray | None
    classes: tuple
    images: np.ndarray | None = None
    concepts: np.ndarray | None = None
    concept_names: tuple = ()
    artefact: np.ndarray | None = None
    index: np.ndarray | None = None
    dataset: str = ""
    modality: str = ""
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.features)

    @property
    def probabilities(self) -> np.ndarray:
        """Softmax of the logits, float [N, C]."""
        z = self.logits - self.logits.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    @property
    def predictions(self) -> np.ndarray:
        """Predicted class per image, int [N]."""
        return self.logits.argmax(1)

    @property
    def correct(self) -> np.ndarray | None:
        """Whether each prediction is right, bool [N] (``None`` without labels)."""
        return None if self.labels is None else self.predictions == self.labels

    def subset(self, indices) -> "LatentFeatures":
        """The items at ``indices`` (positions in this object, not dataset indices)."""
        idx = np.asarray(indices)
        pick = (lambda a: None if a is None else a[idx])
        return replace(self, features=self.features[idx], logits=self.logits[idx], labels=pick(self.labels),
                       images=pick(self.images), concepts=pick(self.concepts), artefact=pick(self.artefact),
                       index=pick(self.index), extra=dict(self.extra))

    def colours(self, concepts: Sequence[str] | None = None) -> dict:
        """Colourings for :func:`medxai_lite.viz.latent.latent_scatter`, in display order.

        ``class`` (true class names), ``prediction`` (``"correct"`` / ``"wrong"``), one
        ``concept: NAME`` per concept in ``concepts`` (default: none; ``"all"``: every concept) and
        ``shortcut artefact`` (``"artefact"`` / ``"no artefact"``) where the data say which
        images carry one and some do.
        """
        out = {}
        if self.labels is not None:
            out["class"] = np.asarray(self.classes, dtype=object)[self.labels]
            out["prediction"] = np.where(self.correct, "correct", "wrong").astype(object)
        names = list(self.concept_names) if concepts == "all" else list(concepts or [])
        for name in names:
            if self.concepts is None or name not in self.concept_names:
                raise ValueError(f"concepts: {name!r} is not a concept of this data; valid: "
                                 f"{', '.join(self.concept_names) or 'none'}")
            out[f"concept: {name}"] = self.concepts[:, list(self.concept_names).index(name)]
        if self.artefact is not None and self.artefact.any():
            out["shortcut artefact"] = np.where(self.artefact, "artefact", "no artefact").astype(object)
        return out

    def hover_text(self) -> list[str]:
        """One line per image for hover boxes and thumbnails: true class, prediction and its probability."""
        probs = self.probabilities
        pred = self.predictions
        lines = []
        for i in range(len(self)):
            p = f"predicted {self.classes[pred[i]]} (p = {probs[i, pred[i]]:.2f})"
            head = f"{self.classes[self.labels[i]]}; " if self.labels is not None else ""
            tail = "; artefact" if self.artefact is not None and self.artefact[i] else ""
            lines.append(f"#{int(self.index[i]) if self.index is not None else i}: {head}{p}{tail}")
        return lines


def classifier_head(model):
    """The network's final linear layer: the zoo's ``ArchSpec.head`` for a zoo model, else the last
    ``nn.Linear`` the model registers.

    ResNets: ``fc``; DenseNet121 and SmallCNN: ``classifier``; VGG16 and EfficientNet-B0:
    ``classifier[-1]`` (after dropout, the identity in eval mode); the hybrid ViT: ``head``
    (after the final LayerNorm of the class token).
    """
    from torch import nn

    from .models.zoo import arch_spec, infer_arch, resolve_module

    arch = infer_arch(model)
    if arch is not None:
        head = resolve_module(model, arch_spec(arch).head)
    else:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("model has no nn.Linear layer: pass head= the layer whose input is the feature vector")
        head = linears[-1]
    if not isinstance(head, nn.Linear):
        raise ValueError(f"the classifier head of this model is a {type(head).__name__}, not an nn.Linear")
    return head


def _display_uint8(images) -> np.ndarray:
    from .data.base import denormalize

    return (denormalize(images.detach().cpu().float()).permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def penultimate_features(model, data, *, n: int | None = None, batch_size: int = 64, labels=None, head=None,
                         keep_images: bool = True) -> LatentFeatures:
    """The input of ``model``'s final linear layer for the first ``n`` items of ``data``.

    A forward hook on the head (:func:`classifier_head`, or ``head``) records its input during one
    forward pass per batch; the hook is removed afterwards, even after an error, and the model's
    mode is not touched (a model in training mode is refused). For the zoo's CNNs this is the
    globally pooled output of the last convolutional block; for the hybrid ViT, the normalised
    class token.

    Parameters
    ----------
    model : nn.Module in eval mode
    data : a dataset of this package (``BiomedDataset``: labels, concepts, ``meta["artefact"]`` and
        ``classes`` are read from it) or a normalised image tensor ``[N, 3, H, W]``
    n : int or None
        How many items, from the start (``None``: all).
    batch_size : int
    labels : int [N], optional
        True classes when ``data`` is a tensor.
    head : nn.Linear, optional
        Overrides :func:`classifier_head`.
    keep_images : bool
        Keep the (denormalised, uint8) images for thumbnails.

    Returns
    -------
    LatentFeatures

    Example
    -------
    >>> feats = penultimate_features(model, dataset, n=300)       # doctest: +SKIP
    >>> feats.features.shape, feats.correct.mean()                # doctest: +SKIP
    """
    import torch

    from ._utils import check_eval_model, check_images

    check_eval_model(model, used_by="latent features")
    batch_size = check_positive_int("batch_size", batch_size)
    if n is not None:
        n = check_positive_int("n", n)
    head = classifier_head(model) if head is None else head
    if not isinstance(head, torch.nn.Module):
        raise ValueError(f"head must be the model's final nn.Linear layer; got {type(head).__name__}")
    dev = model_device(model)

    is_dataset = hasattr(data, "batch") and hasattr(data, "classes")
    if is_dataset:
        total = len(data) if n is None else min(n, len(data))
        if total == 0:
            raise ValueError("data holds no items")
    else:
        images_all = check_images(data)
        total = len(images_all) if n is None else min(n, len(images_all))
        if labels is not None:
            labels = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels).astype(np.int64)
            if labels.shape != (len(images_all),):
                raise ValueError(f"labels must have shape [{len(images_all)}] (one per image); "
                                 f"got {list(labels.shape)}")
            labels = labels[:total]

    captured: list = []

    def record(module, inputs, output):      # returns None: the output is left as it is
        captured.append(inputs[0].detach().flatten(1).float().cpu())

    feats, logits, shown, concepts, label_parts, index = [], [], [], [], [], []
    hook = head.register_forward_hook(record)
    try:
        with torch.no_grad():
            for start in range(0, total, batch_size):
                stop = min(start + batch_size, total)
                if is_dataset:
                    b = data.batch(range(start, stop))
                    x = b["image"]
                    label_parts.append(b["label"].numpy())
                    index.append(b["index"].numpy())
                    if "concepts" in b:
                        concepts.append(b["concepts"].numpy())
                else:
                    x = images_all[start:stop]
                    index.append(np.arange(start, stop))
                captured.clear()
                out = model(x.to(dev))
                if len(captured) != 1:
                    raise RuntimeError(f"the classifier head ran {len(captured)} times in one forward pass; pass head= "
                                       "the layer that produces the logits")
                feats.append(captured[0].numpy())
                logits.append(out.detach().float().cpu().numpy())
                if keep_images:
                    shown.append(_display_uint8(x))
    finally:
        hook.remove()

    meta = (getattr(data, "meta", None) or {}) if is_dataset else {}
    idx = np.concatenate(index)
    artefact = np.asarray(meta["artefact"], dtype=bool)[idx] if "artefact" in meta else None
    if is_dataset:
        labels = np.concatenate(label_parts).astype(np.int64)
        classes = tuple(data.classes)
    else:
        num = logits[0].shape[1]
        classes = tuple(str(c) for c in range(num))
    if labels is not None and (labels.min() < 0 or labels.max() >= logits[0].shape[1]):
        raise ValueError(f"labels must be class indices in 0..{logits[0].shape[1] - 1}")
    return LatentFeatures(
        features=np.concatenate(feats).astype(np.float32), logits=np.concatenate(logits).astype(np.float32),
        labels=labels, classes=classes, images=np.concatenate(shown) if keep_images else None,
        concepts=np.concatenate(concepts).astype(np.float32) if concepts and len(concepts) == len(feats) else None,
        concept_names=tuple(getattr(data, "concept_names", ()) or ()) if is_dataset else (),
        artefact=artefact, index=idx, dataset=getattr(data, "name", "") if is_dataset else "",
        modality=getattr(data, "modality", "") if is_dataset else "")


def mix_features(a: LatentFeatures, b: LatentFeatures, take_b) -> LatentFeatures:
    """Item ``i`` from ``b`` where ``take_b[i]``, else from ``a``: two versions of the same images mixed.

    Built for the shortcut test sets (:func:`medxai_lite.shortcuts.shortcut_test_sets`), which hold
    the same images with the artefact on one class or on another: mixing them at random gives a
    set in which the artefact no longer goes with either class, so a cluster that follows the
    artefact can be told from one that follows the class. ``a`` and ``b`` must hold the same
    items (same dataset indices and labels).
    """
    if len(a) != len(b):
        raise ValueError(f"a and b must hold the same items; got {len(a)} and {len(b)} items")
    take_b = np.asarray(take_b, dtype=bool)
    if take_b.shape != (len(a),):
        raise ValueError(f"take_b must be a boolean array of shape [{len(a)}]; got shape {list(take_b.shape)}")
    same = (a.index is None or b.index is None or np.array_equal(a.index, b.index)) and \
           (a.labels is None or b.labels is None or np.array_equal(a.labels, b.labels))
    if not same:
        raise ValueError("a and b must hold the same items (same dataset indices and labels), e.g. two versions "
                         "of one test set")

    def pick(x, y):
        if x is None or y is None:
            return None
        w = take_b.reshape((-1,) + (1,) * (np.ndim(x) - 1))
        return np.where(w, y, x)

    return replace(a, features=pick(a.features, b.features), logits=pick(a.logits, b.logits),
                   images=pick(a.images, b.images), concepts=pick(a.concepts, b.concepts),
                   artefact=pick(a.artefact, b.artefact), extra=dict(a.extra))


# --------------------------------------------------------------------------------------------- projection
def _as_array(features, name: str = "features") -> np.ndarray:
    x = features.features if isinstance(features, LatentFeatures) else features
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, D] (one row per image); got shape {list(x.shape)}")
    if x.shape[0] < 4:
        raise ValueError(f"{name} must hold at least 4 rows to project; got {x.shape[0]}")
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite numbers (no NaN or infinity)")
    return x.astype(np.float64)


def _check_params(method: str, params: Mapping, n: int) -> dict:
    allowed = PROJECTIONS[method]
    for key in params:
        if key not in allowed:
            raise ValueError(f"unknown parameter {key!r} for method={method!r}; valid: {', '.join(allowed) or 'none'}")
    p = dict(params)
    if "perplexity" in p:
        v = p["perplexity"]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not 0 < v < n:
            raise ValueError(f"perplexity must be a number in (0, {n}) (fewer than the {n} points); got {v!r}")
    if "n_neighbors" in p:
        v = p["n_neighbors"]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 2 <= v < n:
            raise ValueError(f"n_neighbors must be an integer in [2, {n}) for {n} points; got {v!r}")
    if "min_dist" in p:
        v, spread = p["min_dist"], p.get("spread", 1.0)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not 0 <= v <= spread:
            raise ValueError(f"min_dist must be a number in [0, spread={spread}]; got {v!r}")
    return p


def _reduce(x: np.ndarray, components: int | None, seed: int) -> np.ndarray:
    if components is None or x.shape[1] <= components or x.shape[0] <= components:
        return x
    from sklearn.decomposition import PCA

    return PCA(n_components=components, svd_solver="full", random_state=seed).fit_transform(x)


def project(features, method: str = "tsne", *, seed: int = 0, pca_components: int | None = 50, **params) -> np.ndarray:
    """Project features ``[N, D]`` (or a :class:`LatentFeatures`) to two dimensions, deterministically for ``seed``.

    - ``"pca"``: the first two principal components (scikit-learn ``PCA``; signs fixed by
      scikit-learn's ``svd_flip``). Linear: distances along the axes mean something, and a
      structure it does not show may still be there in other directions.
    - ``"tsne"``: scikit-learn ``TSNE`` (Barnes-Hut) with ``random_state=seed``, defaults
      ``perplexity=30``, ``init="pca"``, ``learning_rate="auto"`` (van der Maaten & Hinton
      2008). With the PCA initialisation the seed only drives the randomised SVD that computes
      it, so different seeds give nearly the same map (the stability Kobak & Linderman 2021
      recommend it for); ``init="random"`` starts from random positions drawn with the seed,
      which shows what the seed can do. It runs on one OpenMP thread: the Barnes-Hut gradient
      sums a normalisation over points in parallel, and with more than two threads the order of
      that sum, hence the last bits of the result, could change from run to run.
    - ``"umap"``: umap-learn ``UMAP`` with ``random_state=seed`` and ``n_jobs=1`` (umap-learn
      runs single-threaded once a seed is set, which makes it deterministic), defaults
      ``n_neighbors=15, min_dist=0.1`` (McInnes et al. 2018). The first call in a process
      compiles umap-learn's numba code (several seconds).

    Before t-SNE and UMAP the features are reduced to ``pca_components`` principal components
    (default 50; ``None``: not reduced), as van der Maaten & Hinton did (to 30): it removes
    directions of near-zero variance, which carry mostly noise, and makes the neighbour search
    cheaper; the notebook reports the variance kept. The features are not standardised: the
    classifier head reads them as they are, so their raw Euclidean geometry is what the network
    uses, and standardising would inflate units that hardly vary.

    ``params`` are the method's settings (:data:`PROJECTIONS`); an unknown one, or a value out of
    range, raises a ``ValueError`` naming it.

    Returns
    -------
    float32 [N, 2]
    """
    check_choice("method", method, PROJECTIONS)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    if pca_components is not None:
        pca_components = check_positive_int("pca_components", pca_components, minimum=2)
    x = _as_array(features)
    params = _check_params(method, params, len(x))
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, svd_solver="full").fit_transform(x).astype(np.float32)
    x = _reduce(x, pca_components, int(seed))
    if method == "tsne":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        params.setdefault("perplexity", min(30.0, (len(x) - 1) / 3))
        params.setdefault("init", "pca")
        params.setdefault("learning_rate", "auto")
        with threadpool_limits(limits=1, user_api="openmp"):
            y = TSNE(n_components=2, random_state=int(seed), **params).fit_transform(x)
        return np.asarray(y, dtype=np.float32)
    import umap

    params.setdefault("n_neighbors", min(15, len(x) - 1))
    with warnings.catch_warnings():
        # with few, well separated points umap-learn warns that its spectral initialisation sees a
        # graph of several components; it then lays the components out one by one, which is the
        # intended result here, so the warning says nothing the figure does not
        warnings.filterwarnings("ignore", message=".*not fully connected.*")
        y = umap.UMAP(n_components=2, random_state=int(seed), n_jobs=1, **params).fit_transform(x)
    return np.asarray(y, dtype=np.float32)


# --------------------------------------------------------------------------------------------- quality
def _check_pair(x, y, n_neighbors):
    x = _as_array(x, "X")
    y = _as_array(y, "Y")
    if len(x) != len(y):
        raise ValueError(f"X and Y must hold the same points; got {len(x)} and {len(y)} rows")
    k = check_positive_int("n_neighbors", n_neighbors)
    if not k < len(x) / 2:
        raise ValueError(f"n_neighbors must be below half the number of points ({len(x)} / 2); got {k}")
    return x, y, k


def trustworthiness(X, Y, n_neighbors: int = 10) -> float:
    r"""Trustworthiness of the embedding ``Y`` of ``X`` (Venna & Kaski 2001): are the neighbours seen
    in the map true neighbours?

    .. math:: T(k) = 1 - \frac{2}{N k (2N - 3k - 1)} \sum_{i=1}^{N} \sum_{j \in U_k(i)} \big(r(i, j) - k\big)

    :math:`U_k(i)`: the points among the :math:`k` nearest neighbours of :math:`i` in ``Y`` but not
    in ``X``; :math:`r(i, j)`: the rank of :math:`j` among the neighbours of :math:`i` in ``X``
    (1 = nearest). 1 when every neighbourhood of the map is a true one; a random map gives about
    0.5. Computed by :func:`sklearn.manifold.trustworthiness` (Euclidean distances); requires
    ``n_neighbors < N / 2``.
    """
    from sklearn.manifold import trustworthiness as _t

    x, y, k = _check_pair(X, Y, n_neighbors)
    return float(_t(x, y, n_neighbors=k))


def continuity(X, Y, n_neighbors: int = 10) -> float:
    r"""Continuity of the embedding ``Y`` of ``X`` (Venna & Kaski 2001): are the true neighbours kept
    together in the map?

    .. math:: C(k) = 1 - \frac{2}{N k (2N - 3k - 1)} \sum_{i=1}^{N} \sum_{j \in V_k(i)} \big(\hat r(i, j) - k\big)

    :math:`V_k(i)`: the points among the :math:`k` nearest neighbours of :math:`i` in ``X`` but not
    in ``Y``; :math:`\hat r(i, j)`: the rank of :math:`j` among the neighbours of :math:`i` in ``Y``.
    It is trustworthiness with the two spaces swapped, ``T`` computed with ``Y`` as the original
    space and ``X`` as the map, which is how it is computed here. A map that tears a true
    neighbourhood apart loses continuity; one that glues unrelated points together loses
    trustworthiness.
    """
    from sklearn.manifold import trustworthiness as _t

    x, y, k = _check_pair(X, Y, n_neighbors)
    return float(_t(y, x, n_neighbors=k))


def knn_accuracy(X, labels, *, k: int = 5, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated accuracy of a ``k``-nearest-neighbour classifier on ``X`` (scikit-learn).

    Run on the features and on a map of them, it says how much of the class structure the map
    keeps: a projection cannot add information, so a map scoring well below the features has
    lost neighbourhoods that matter. Stratified ``folds``-fold split, shuffled with ``seed``.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    x = _as_array(X, "X")
    y = np.asarray(labels)
    if y.shape != (len(x),):
        raise ValueError(f"labels must have shape [{len(x)}] (one per row of X); got {list(y.shape)}")
    k = check_positive_int("k", k)
    folds = check_positive_int("folds", folds, minimum=2)
    if np.bincount(np.unique(y, return_inverse=True)[1]).min() < folds:
        raise ValueError(f"every class needs at least folds={folds} points")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(KNeighborsClassifier(n_neighbors=k), x, y, cv=cv).mean())


def cluster_separation(X, groupings: Mapping[str, object]) -> dict:
    """Silhouette score of ``X`` for each grouping (Rousseeuw 1987; :func:`sklearn.metrics.silhouette_score`).

    For point :math:`i` with mean distance :math:`a(i)` to its own group and :math:`b(i)` to the
    nearest other group, :math:`s(i) = (b - a) / \\max(a, b)`; the score is the mean over points,
    in [-1, 1]: near 1 when the groups form compact, separate clusters, near 0 when they overlap.
    Comparing groupings on the same points (the class, the shortcut artefact) says which one the
    clusters follow. A grouping with a single group scores NaN.
    """
    from sklearn.metrics import silhouette_score

    x = _as_array(X, "X")
    out = {}
    for name, groups in groupings.items():
        g = np.asarray(groups)
        if g.shape != (len(x),):
            raise ValueError(f"groupings[{name!r}] must have shape [{len(x)}]; got {list(g.shape)}")
        k = len(np.unique(g))
        out[name] = float(silhouette_score(x, g)) if 2 <= k < len(x) else float("nan")
    return out


def class_islands(X, labels, k: int = 5) -> np.ndarray:
    """Into how many separate pieces each class falls: connected components of its k-NN graph.

    For each class (in the order of ``np.unique(labels)``), every point is joined to its ``k``
    nearest points of the same class (Euclidean; :func:`sklearn.neighbors.kneighbors_graph`),
    directions ignored, and the components are counted
    (:func:`scipy.sparse.csgraph.connected_components`). A class that forms one connected cloud
    gives 1; a map that breaks it into islands separated by gaps gives more, which is how t-SNE
    at a small perplexity or UMAP with few neighbours can invent sub-clusters (Wattenberg et al.
    2016). It has no distance scale, so the feature space and a map are measured alike. Islands
    of ``k`` points or fewer are not seen (each point needs ``k`` neighbours); a class of at most
    ``k`` points uses all its other points.

    Returns
    -------
    int array [number of classes]
    """
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import kneighbors_graph

    x = _as_array(X, "X")
    y = np.asarray(labels)
    if y.shape != (len(x),):
        raise ValueError(f"labels must have shape [{len(x)}] (one per row of X); got {list(y.shape)}")
    k = check_positive_int("k", k)
    out = []
    for c in np.unique(y):
        z = x[y == c]
        if len(z) < 2:
            out.append(1)
            continue
        graph = kneighbors_graph(z, min(k, len(z) - 1))
        out.append(int(connected_components(graph, directed=True, connection="weak")[0]))
    return np.asarray(out, dtype=int)


# --------------------------------------------------------------------------------------------- studies
@dataclass
class Projections:
    """Embeddings of one feature set under several settings, and a tidy table of their scores.

    ``embeddings`` maps a setting label (the table's ``setting`` column) to a float32 [N, 2] array.
    """

    embeddings: dict
    table: object   # pandas.DataFrame


def _scores(x, y, labels, k: int, knn: int | None, seed: int, islands: bool = False) -> dict:
    row = {"trustworthiness": trustworthiness(x, y, k), "continuity": continuity(x, y, k)}
    if labels is not None and knn:
        row["knn accuracy"] = knn_accuracy(y, labels, k=knn, seed=seed)
    if labels is not None and islands:
        row["islands per class"] = float(class_islands(y, labels).mean())
    return row


def _label(method: str, params: Mapping) -> str:
    return f"{TITLES[method]}" + ("" if not params else " " + ", ".join(f"{k}={v:g}" if isinstance(v, (int, float))
                                                                            else f"{k}={v}" for k, v in params.items()))


def projection_table(feature_sets: Mapping[str, object], methods: Sequence[str] = ("pca", "tsne", "umap"), *,
                     seed: int = 0, n_neighbors: int = 10, knn: int | None = 5,
                     params: Mapping[str, Mapping] | None = None) -> Projections:
    """Project every feature set with every method and score each map.

    ``feature_sets`` maps a name to :class:`LatentFeatures` (or an array; then no k-NN accuracy).
    ``params`` gives per-method settings (e.g. ``{"tsne": {"perplexity": 30}}``).

    Returns :class:`Projections`: embeddings keyed ``(name, method)``, and a table with one row
    per (set, method): ``set, method, trustworthiness, continuity, knn accuracy`` (in the map),
    ``knn accuracy (features)`` (the same classifier on the features), ``seconds``.
    """
    import pandas as pd

    params = dict(params or {})
    for m in methods:
        check_choice("methods", m, PROJECTIONS)
    for m in params:
        check_choice("params", m, PROJECTIONS)
    embeddings, rows = {}, []
    for name, feats in feature_sets.items():
        x = _as_array(feats)
        labels = feats.labels if isinstance(feats, LatentFeatures) else None
        base = knn_accuracy(x, labels, k=knn, seed=seed) if labels is not None and knn else np.nan
        for m in methods:
            t0 = time.perf_counter()
            y = project(x, m, seed=seed, **params.get(m, {}))
            seconds = time.perf_counter() - t0
            embeddings[(name, m)] = y
            rows.append({"set": name, "method": TITLES[m], **_scores(x, y, labels, n_neighbors, knn, seed),
                         "knn accuracy (features)": base, "seconds": seconds})
    return Projections(embeddings, pd.DataFrame(rows))


def sensitivity_grid(features, *, perplexities: Sequence[float] = (5, 30, 100),
                     n_neighbors: Sequence[int] = (5, 15, 50), min_dists: Sequence[float] = (0.0, 0.1, 0.5),
                     seed: int = 0, k: int = 10, knn: int | None = 5) -> Projections:
    """t-SNE over ``perplexities`` and UMAP over ``n_neighbors`` x ``min_dists``, all with one ``seed``.

    Each map is scored with :func:`trustworthiness` and :func:`continuity` at ``k`` neighbours,
    and timed; when the features carry labels, also by k-NN accuracy (``knn`` neighbours) and by
    the mean number of islands per class (:func:`class_islands`, 5 neighbours).

    Returns :class:`Projections`; the table has one row per map: ``setting, method, perplexity,
    n_neighbors, min_dist, trustworthiness, continuity, knn accuracy, islands per class,
    seconds`` (NaN where a setting does not apply).
    """
    import pandas as pd

    x = _as_array(features)
    labels = features.labels if isinstance(features, LatentFeatures) else None
    runs = [("tsne", {"perplexity": p}) for p in perplexities]
    runs += [("umap", {"n_neighbors": nn, "min_dist": md}) for nn in n_neighbors for md in min_dists]
    if not runs:
        raise ValueError("perplexities, or n_neighbors and min_dists, must name at least one setting")
    embeddings, rows = {}, []
    for method, p in runs:
        t0 = time.perf_counter()
        y = project(x, method, seed=seed, **p)
        seconds = time.perf_counter() - t0
        label = _label(method, p)
        embeddings[label] = y
        rows.append({"setting": label, "method": TITLES[method], "perplexity": p.get("perplexity", np.nan),
                     "n_neighbors": p.get("n_neighbors", np.nan), "min_dist": p.get("min_dist", np.nan),
                     **_scores(x, y, labels, k, knn, seed, islands=True), "seconds": seconds})
    return Projections(embeddings, pd.DataFrame(rows))


@dataclass
class SeedStability:
    """:func:`seed_stability`'s result: embeddings per seed, scores per seed, and Procrustes disparity per pair."""

    embeddings: dict
    table: object       # pandas.DataFrame: seed, trustworthiness, continuity, seconds
    disparity: object   # pandas.DataFrame: seed a, seed b, disparity

    def summary(self) -> dict:
        """Mean and largest disparity, and the spread (max - min) of trustworthiness and continuity."""
        d = self.disparity["disparity"]
        t, c = self.table["trustworthiness"], self.table["continuity"]
        return {"mean disparity": float(d.mean()), "max disparity": float(d.max()),
                "trustworthiness range": float(t.max() - t.min()), "continuity range": float(c.max() - c.min())}


def seed_stability(features, method: str = "tsne", *, seeds: Sequence[int] = (0, 1, 2), k: int = 10,
                   **params) -> SeedStability:
    """Project the same features with several seeds and compare the maps.

    Two maps are compared by Procrustes analysis (:func:`scipy.spatial.procrustes`): both are
    centred and scaled to unit norm, the second is rotated, reflected and scaled to fit the
    first, and the disparity is the sum of squared differences left, :math:`\\sum_i \\lVert
    y^{(a)}_i - \\hat y^{(b)}_i\\rVert^2` in [0, 1] (0: the same map up to rotation, reflection and
    scale). Trustworthiness and continuity of each map give the spread of the quality scores.
    """
    import itertools

    import pandas as pd
    from scipy.spatial import procrustes

    check_choice("method", method, PROJECTIONS)
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must hold at least two different seeds; got {seeds}")
    x = _as_array(features)
    embeddings, rows = {}, []
    for s in seeds:
        t0 = time.perf_counter()
        y = project(x, method, seed=s, **params)
        seconds = time.perf_counter() - t0
        embeddings[s] = y
        rows.append({"seed": s, "trustworthiness": trustworthiness(x, y, k), "continuity": continuity(x, y, k),
                     "seconds": seconds})
    pairs = [{"seed a": a, "seed b": b,
              "disparity": float(procrustes(embeddings[a].astype(np.float64), embeddings[b].astype(np.float64))[2])}
             for a, b in itertools.combinations(seeds, 2)]
    return SeedStability(embeddings, pd.DataFrame(rows), pd.DataFrame(pairs))
