"""Concepts found without labels (ACE) and how completely a concept set explains a model (ConceptSHAP).

**ACE** (Ghorbani et al. 2019, "Towards Automatic Concept-based Explanations"), :func:`ace`:

1. segment each discovery image (images of one class) with SLIC (scikit-image) at several
   resolutions (``resolutions``: numbers of superpixels), dropping segments under 1 % of the image;
2. turn each segment into a patch: the segment's bounding box, its outside filled with the grey
   ACE uses (117.5 / 255), resized to the network's input size;
3. read each patch's activations at ``layer``, averaged over space (ACE's ``channel_mean``);
4. cluster them with k-means (scikit-learn); in each cluster keep the ``max_segments`` segments
   nearest its centre, and keep the cluster as a concept only when it is not an outlier, by ACE's
   rule: with ``n`` segments in the whole cluster (before the cut to ``max_segments``, as in
   ACE's code) from ``u`` distinct images out of ``N`` discovery images, at least
   ``min_segments`` segments and ``u > 0.5 n`` (highly common), or ``u > 0.25 n`` and ``u > 0.25 N``,
   or ``u > 0.1 n`` and ``u > 0.5 N``;
5. score each concept with TCAV (:func:`medxai_lite.concepts.tcav`, significance against random
   sets of patches) and keep, for a gallery, the patches nearest its centre.

**ConceptSHAP** (Yeh et al. 2020, "On Completeness-aware Concept-Based Explanations in Deep Neural
Networks"), :func:`completeness` and :func:`concept_shap`. For a model ``f(x) = h(Phi(x))`` and unit
concept vectors ``c_1..c_m`` in the space of ``Phi``, the concept scores are the projections
``v_c(x) = (Phi(x) . c_j)_j`` (the image-level form of the paper's concept product) and the
**completeness** of a set ``S`` is

    eta(S) = (sup_g P[y = argmax h(g(v_S(x)))] - a_r) / (P[y = argmax f(x)] - a_r),

with ``g`` a map from the ``|S|`` scores back to ``Phi``'s space (a small MLP trained through the
fixed ``h``; its best accuracy stands in for the sup) and ``a_r`` the accuracy of the best constant
prediction (the majority class), so that ``eta(empty set)`` is about 0 and a set that lets ``h`` do
as well as the model scores 1. The **ConceptSHAP** value of concept ``i`` is its Shapley value for
the game ``eta``,

    s_i = sum_{S subset of C minus {i}} |S|! (m - |S| - 1)! / m! * (eta(S + {i}) - eta(S)),

computed exactly by enumerating all ``2^m`` subsets (``m`` <= 10), so the values add up to
``eta(C) - eta(empty set)`` (efficiency).
"""
from __future__ import annotations

import copy
import itertools
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._utils import check_eval_model, check_images, check_positive_int, model_device

__all__ = ["ACEConcept", "ACEResult", "ace", "segment_patches", "ConceptSHAPResult", "completeness", "concept_shap",
           "concept_projections", "probe_vectors", "segment_overlap"]

#: The grey ACE fills the outside of a segment with (117.5 on a 0-255 scale).
ACE_GREY = 117.5 / 255


# ----------------------------------------------------------------------------- ACE
def segment_patches(images, resolutions: Sequence[int] = (5, 10, 20), *, size: int | None = None,
                    compactness: float = 20.0, sigma: float = 1.0, min_area: float = 0.01):
    """SLIC segments of ``images`` (normalised ``[N, 3, H, W]``) at each resolution, as ACE patches.

    Returns ``(patches float [P, 3, size, size] in [0, 1], masks bool [P, H, W], image_index int [P],
    resolution int [P])``; ``size`` defaults to the images' size.
    """
    from skimage.segmentation import slic
    from skimage.transform import resize

    from ..data.base import denormalize

    images = check_images(images)
    if not resolutions or not all(isinstance(r, (int, np.integer)) and r >= 2 for r in resolutions):
        raise ValueError(f"resolutions must be a non-empty list of integers >= 2 (superpixels per image); "
                         f"got {resolutions!r}")
    if not 0 <= float(min_area) < 1:
        raise ValueError(f"min_area must lie in [0, 1); got {min_area!r}")
    size = images.shape[-1] if size is None else check_positive_int("size", size, minimum=8)
    pixels = denormalize(images.float()).permute(0, 2, 3, 1).cpu().numpy().astype(np.float64)
    patches, masks, owner, res = [], [], [], []
    for i, img in enumerate(pixels):
        for r in resolutions:
            segments = slic(img, n_segments=int(r), compactness=compactness, sigma=sigma, start_label=0,
                            channel_axis=-1)
            for label in np.unique(segments):
                mask = segments == label
                if mask.mean() < min_area:
                    continue
                rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
                box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
                patch = np.where(mask[..., None], img, ACE_GREY)[box]
                patches.append(resize(patch, (size, size), order=3, anti_aliasing=True).clip(0, 1))
                masks.append(mask)
                owner.append(i)
                res.append(int(r))
    if not patches:
        raise ValueError("no segment is larger than min_area; lower min_area or the resolutions")
    tensor = torch.from_numpy(np.stack(patches).astype(np.float32)).permute(0, 3, 1, 2).contiguous()
    return tensor, np.stack(masks), np.asarray(owner), np.asarray(res)


@dataclass
class ACEConcept:
    """One discovered concept: its segments (``members``, positions in :attr:`ACEResult.patches`,
    nearest the centre first), the distinct images they come from, the cluster centre in activation
    space (a concept vector for :func:`concept_shap`) and its TCAV score and significance."""

    name: str
    members: np.ndarray
    n_images: int
    centre: np.ndarray
    tcav: float = float("nan")
    p_value: float = float("nan")
    significant: bool = False

    def gallery(self, result: "ACEResult", k: int = 8) -> np.ndarray:
        """The ``k`` patches nearest the centre, uint8 ``[k, S, S, 3]``."""
        idx = self.members[:check_positive_int("k", k)]
        return (result.patches[idx].permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


@dataclass
class ACEResult:
    """What :func:`ace` found: the concepts (outlier clusters removed) and every segment.

    ``patches`` float [P, 3, S, S] in [0, 1]; ``masks`` bool [P, H, W] (the segment in its image);
    ``image_index`` and ``resolution`` int [P]; ``activations`` [P, F]; ``cluster`` int [P] (k-means
    label); ``tcav``: the :class:`~medxai_lite.concepts.TCAVResult` of the kept concepts.
    """

    concepts: list
    patches: torch.Tensor
    masks: np.ndarray
    image_index: np.ndarray
    resolution: np.ndarray
    activations: np.ndarray
    cluster: np.ndarray
    tcav: object = None
    target: int = 0
    extra: dict = field(default_factory=dict)

    def table(self):
        """One row per concept: segments, images, TCAV score, p-value and significance."""
        import pandas as pd

        return pd.DataFrame([{"concept": c.name, "segments": len(c.members), "images": c.n_images, "tcav": c.tcav,
                              "p": c.p_value, "significant": c.significant} for c in self.concepts]).set_index("concept") \
            if self.concepts else pd.DataFrame(columns=["segments", "images", "tcav", "p", "significant"])


@torch.no_grad()
def _pooled_activations(model, module, x, batch_size, dev):
    out, seen = [], []
    hook = module.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    try:
        for s in range(0, len(x), batch_size):
            seen.clear()
            model(x[s:s + batch_size].to(dev))
            a = seen[-1].float()
            out.append((a.mean((2, 3)) if a.ndim == 4 else a.flatten(1)).cpu())
    finally:
        hook.remove()
    return torch.cat(out).numpy()


def ace(model: nn.Module, images, *, layer=None, tcav_layer=None, target: int | None = None,
        resolutions: Sequence[int] = (5, 10, 20),
        n_clusters: int = 10, max_segments: int = 40, min_segments: int | None = None, random=None, n_random: int = 10,
        alpha: float = 0.05, compactness: float = 20.0, sigma: float = 1.0, min_area: float = 0.01,
        batch_size: int = 64, seed: int = 0) -> ACEResult:
    """Automatic concept discovery (ACE) on ``images`` (normalised ``[N, 3, H, W]``, ideally of one
    class), steps in the module docstring.

    Parameters
    ----------
    model : nn.Module in eval mode
    layer : module, dotted name or None
        Where segments are clustered (``None``: the zoo architecture's second-to-last stage, as for
        :func:`~medxai_lite.concepts.tcav`). At a ResNet's last block (``"layer4.-1"``) the spatial
        mean of the activations is the classifier head's input, so the cluster centres are concept
        vectors :func:`concept_shap` can use with ``head=classifier_head(model)``.
    tcav_layer : module, dotted name or None
        Where the concepts' CAVs live (default: ``layer``; TCAV at the last block before a GAP-linear
        head gives only 0 or 1, so pass an earlier one when ``layer`` is the last).
    target : int, optional
        The class the TCAV scores are for (default: the class ``model`` predicts most on ``images``).
    resolutions : list of int
        SLIC superpixels per image at each resolution (ACE: 15, 50, 80 at 299 px; fewer here for
        64-112 px phantoms).
    n_clusters, max_segments, min_segments : int
        k-means clusters; segments kept per cluster (nearest the centre); the smallest cluster kept
        (default ``max(2, 0.4 N)``).
    random : dataset or Tensor, optional
        The pool of TCAV's random sets (default: every segment patch, so a concept is contrasted with
        random segments, as a patch with a grey surround).
    n_random, alpha : TCAV's random counterparts and significance level (:func:`~medxai_lite.concepts.tcav`).
    compactness, sigma, min_area : SLIC's settings and the smallest segment kept (share of the image).
    seed : int
        k-means and TCAV.

    Returns
    -------
    ACEResult
    """
    from sklearn.cluster import KMeans

    from ..data.base import normalize
    from .tcav import resolve_layer, tcav

    check_eval_model(model, used_by="ACE")
    images = check_images(images)
    n_clusters = check_positive_int("n_clusters", n_clusters, minimum=2)
    max_segments = check_positive_int("max_segments", max_segments, minimum=2)
    batch_size = check_positive_int("batch_size", batch_size)
    check_positive_int("seed", seed, minimum=0)
    n_images = len(images)
    min_segments = max(2, int(round(0.4 * n_images))) if min_segments is None else \
        check_positive_int("min_segments", min_segments, minimum=2)
    _, module = resolve_layer(model, layer)
    dev = model_device(model)
    if target is None:
        with torch.no_grad():
            preds = torch.cat([model(images[s:s + batch_size].to(dev)).argmax(1).cpu()
                               for s in range(0, n_images, batch_size)])
        target = int(torch.bincount(preds).argmax())
    patches, masks, owner, res = segment_patches(images, resolutions, compactness=compactness, sigma=sigma,
                                                 min_area=min_area)
    if len(patches) < n_clusters:
        raise ValueError(f"n_clusters={n_clusters} exceeds the {len(patches)} segments found; lower n_clusters or "
                         "raise the resolutions")
    inputs = normalize(patches)
    acts = _pooled_activations(model, module, inputs, batch_size, dev)
    km = KMeans(n_clusters=n_clusters, n_init=10, random_state=int(seed)).fit(acts)
    dist = np.linalg.norm(acts - km.cluster_centers_[km.labels_], axis=1)
    concepts = []
    for k in range(n_clusters):
        members = np.flatnonzero(km.labels_ == k)
        if len(members) < min_segments:
            continue
        kept = members[np.argsort(dist[members], kind="stable")][:max_segments]
        n = len(members)                     # ACE counts the whole cluster, not the segments kept
        u = len(np.unique(owner[members]))
        highly_common = u > 0.5 * n
        cond2 = u > 0.25 * n and u > 0.25 * n_images
        cond3 = u > 0.1 * n and u > 0.5 * n_images
        if highly_common or cond2 or cond3:
            concepts.append(ACEConcept(f"concept {len(concepts) + 1}", kept, len(np.unique(owner[kept])),
                                       km.cluster_centers_[k]))
    result = ACEResult(concepts, patches, masks, owner, res, acts, km.labels_, None, int(target),
                       extra={"resolutions": tuple(int(r) for r in resolutions), "min_segments": min_segments})
    if concepts:
        sets = {c.name: inputs[torch.from_numpy(c.members)] for c in concepts}
        scores = tcav(model, module if tcav_layer is None else tcav_layer, int(target), sets, images,
                      inputs if random is None else random,
                      n_random=n_random, n_examples=min(max_segments, max(len(c.members) for c in concepts)),
                      alpha=alpha, seed=seed, batch_size=batch_size)
        for c, s, p, sig in zip(concepts, scores.mean_scores, scores.p_adjusted, scores.significant):
            c.tcav, c.p_value, c.significant = float(s), float(p), bool(sig)
        result.tcav = scores
    return result


# ----------------------------------------------------------------------------- ConceptSHAP
def concept_projections(features, concept_vectors) -> np.ndarray:
    """``v_c(x) = Phi(x) . c_j / |c_j|``: the concept scores ``[N, m]`` of features ``[N, D]``."""
    x = np.asarray(features, dtype=np.float64)
    c = np.asarray(concept_vectors, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must have shape [N, D]; got {list(x.shape)}")
    if c.ndim != 2 or c.shape[1] != x.shape[1]:
        raise ValueError(f"concept_vectors must have shape [m, D] with D = {x.shape[1]}; got {list(c.shape)}")
    norms = np.linalg.norm(c, axis=1)
    if (norms == 0).any():
        raise ValueError("concept_vectors must not contain a zero vector")
    return x @ (c / norms[:, None]).T


class _Reconstruct(nn.Module):
    """``g``: concept scores ``[N, k]`` -> a feature vector ``[N, D]`` (a constant for k = 0)."""

    def __init__(self, k: int, dim: int, hidden: int):
        super().__init__()
        self.k = k
        if k == 0:
            self.const = nn.Parameter(torch.zeros(dim))
        elif hidden:
            self.net = nn.Sequential(nn.Linear(k, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        else:
            self.net = nn.Linear(k, dim)

    def forward(self, v):
        return self.const.expand(len(v), -1) if self.k == 0 else self.net(v)


def _head_fn(head) -> Callable:
    """A module head is used as a frozen CPU copy: the completeness fit is thousands of tiny steps on
    CPU features (faster there than on a GPU), and the caller's head keeps its device and flags."""
    if isinstance(head, nn.Module):
        head = copy.deepcopy(head).cpu()
        for p in head.parameters():
            p.requires_grad_(False)
        return head
    if callable(head):
        return head
    raise ValueError(f"head must be an nn.Module or a callable mapping features [N, D] to logits; got {head!r}")


def _split(features, labels, validation):
    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64)
    if x.ndim != 2 or y.shape != (len(x),):
        raise ValueError(f"features [N, D] and labels [N] must match; got {list(x.shape)} and {list(y.shape)}")
    if validation is None:
        return x, y, x, y
    xv, yv = (np.asarray(validation[0], dtype=np.float32), np.asarray(validation[1], dtype=np.int64))
    if xv.ndim != 2 or xv.shape[1] != x.shape[1] or yv.shape != (len(xv),):
        raise ValueError("validation must be (features [M, D], labels [M]) with the features' D")
    return x, y, xv, yv


def completeness(features, labels, head, concept_vectors, *, validation=None, hidden: int = 64, epochs: int = 300,
                 lr: float = 1e-2, seed: int = 0) -> float:
    """Yeh et al.'s completeness ``eta`` of ``concept_vectors`` [m, D] (m may be 0) for the model
    ``head(features)`` (module docstring): ``g`` is fitted on ``(features, labels)`` and the
    accuracies are measured on ``validation`` (default: the same data)."""
    return _Completeness(features, labels, head, validation, hidden, epochs, lr, seed)(
        np.asarray(concept_vectors, dtype=np.float64).reshape(-1, np.asarray(features).shape[1]))


@contextmanager
def _one_torch_thread():
    """Run a block on one PyTorch thread (restored afterwards): g's training is thousands of tiny
    operations, and on a busy two-core machine each one waited for a second thread to be scheduled
    (measured: 10 ms against 0.2 ms per backward pass). The results are the same."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class _Completeness:
    def __init__(self, features, labels, head, validation, hidden, epochs, lr, seed):
        self.x, self.y, self.xv, self.yv = _split(features, labels, validation)
        self.head = _head_fn(head)
        self.hidden = check_positive_int("hidden", hidden, minimum=0)
        self.epochs = check_positive_int("epochs", epochs)
        self.lr, self.seed = float(lr), check_positive_int("seed", seed, minimum=0)
        with torch.no_grad():
            self.model_acc = float((self.head(torch.from_numpy(self.xv)).argmax(1).numpy() == self.yv).mean())
        self.a_r = float(np.bincount(self.yv).max() / len(self.yv))
        if self.model_acc <= self.a_r:
            raise ValueError(f"the model's accuracy ({self.model_acc:.3f}) is no better than the majority class "
                             f"({self.a_r:.3f}): completeness is undefined")

    def accuracy(self, vectors: np.ndarray) -> float:
        with _one_torch_thread():
            return self._accuracy(vectors)

    def _accuracy(self, vectors: np.ndarray) -> float:
        k = len(vectors)
        v = concept_projections(self.x, vectors) if k else np.zeros((len(self.x), 0))
        vv = concept_projections(self.xv, vectors) if k else np.zeros((len(self.xv), 0))
        scale = v.std(0) + 1e-8 if k else np.ones(0)
        v, vv = torch.from_numpy((v / scale).astype(np.float32)), torch.from_numpy((vv / scale).astype(np.float32))
        y = torch.from_numpy(self.y)
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            g = _Reconstruct(k, self.x.shape[1], self.hidden)
        if k == 0:                                 # start the constant at the mean feature
            g.const.data.copy_(torch.from_numpy(self.x.mean(0)))
        opt = torch.optim.Adam(g.parameters(), lr=self.lr)
        for _ in range(self.epochs):
            opt.zero_grad()
            F.cross_entropy(self.head(g(v)), y).backward()
            opt.step()
        with torch.no_grad():
            return float((self.head(g(vv)).argmax(1).numpy() == self.yv).mean())

    def __call__(self, vectors: np.ndarray) -> float:
        return (self.accuracy(vectors) - self.a_r) / (self.model_acc - self.a_r)


@dataclass
class ConceptSHAPResult:
    """ConceptSHAP values ``shapley`` [m] of the concepts ``names``; ``eta`` maps each subset (a tuple
    of concept positions) to its completeness, ``eta[()]`` the empty set's."""

    names: tuple
    shapley: np.ndarray
    eta: dict
    model_accuracy: float
    random_accuracy: float

    @property
    def completeness(self) -> float:
        """eta of the whole set."""
        return self.eta[tuple(range(len(self.names)))]

    def table(self):
        import pandas as pd

        return pd.DataFrame({"concept": list(self.names), "conceptshap": self.shapley,
                             "alone": [self.eta[(i,)] for i in range(len(self.names))]}).set_index("concept")


def concept_shap(features, labels, head, concept_vectors, *, names: Sequence[str] | None = None, validation=None,
                 hidden: int = 64, epochs: int = 300, lr: float = 1e-2, seed: int = 0) -> ConceptSHAPResult:
    """Exact ConceptSHAP values of ``concept_vectors`` [m, D] (m <= 10) for ``head(features)``: the
    completeness of all ``2^m`` subsets (:func:`completeness`, same settings) and their Shapley
    values (module docstring).

    Example
    -------
    >>> res = concept_shap(feats.features, feats.labels, classifier_head(model), cavs, names=names)   # doctest: +SKIP
    >>> res.shapley.sum(), res.completeness - res.eta[()]                                             # doctest: +SKIP
    """
    vectors = np.asarray(concept_vectors, dtype=np.float64)
    if vectors.ndim != 2 or not 1 <= len(vectors) <= 10:
        raise ValueError(f"concept_vectors must have shape [m, D] with 1 <= m <= 10 (2^m completeness fits); "
                         f"got {list(vectors.shape)}")
    m = len(vectors)
    names = tuple(f"concept {i + 1}" for i in range(m)) if names is None else tuple(names)
    if len(names) != m or len(set(names)) != m:
        raise ValueError(f"names must be {m} distinct concept names; got {names!r}")
    game = _Completeness(features, labels, head, validation, hidden, epochs, lr, seed)
    concept_projections(game.x[:1], vectors)          # checks the shapes once
    eta = {s: game(vectors[list(s)]) for r in range(m + 1) for s in itertools.combinations(range(m), r)}
    shapley = np.zeros(m)
    for i in range(m):
        others = [j for j in range(m) if j != i]
        for r in range(m):
            weight = math.factorial(r) * math.factorial(m - r - 1) / math.factorial(m)
            for s in itertools.combinations(others, r):
                shapley[i] += weight * (eta[tuple(sorted(s + (i,)))] - eta[s])
    return ConceptSHAPResult(names, shapley, eta, game.model_acc, game.a_r)


# ----------------------------------------------------------------------------- helpers
def probe_vectors(features, concepts, *, C: float = 1.0, threshold: float = 0.5) -> np.ndarray:
    """Concept vectors in the space of ``features`` from labelled examples: one linear probe per concept.

    For concept ``j`` an L2 logistic regression (scikit-learn, inverse strength ``C``) predicts
    ``concepts[:, j] > threshold`` from the standardised features ``z = (x - mu) / sigma``; its
    weights ``w_j`` give the raw-space vector ``c_j = (w_j / sigma) / |w_j / sigma|``, since
    ``z . w_j = x . (w_j / sigma) + const``. These are the CAVs of Kim et al. (2018) in the space of
    the penultimate features, and the concept vectors :func:`completeness` and
    :func:`concept_shap` project on.

    Parameters
    ----------
    features : float [N, D]
    concepts : float or bool [N, K]
        Concept labels (values above ``threshold`` count as present); every concept needs both
        present and absent examples.

    Returns
    -------
    float [K, D], unit rows.
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, dtype=np.float64)
    c = np.asarray(concepts, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"features must have shape [N, D] with N >= 2; got {list(x.shape)}")
    if c.ndim == 1:
        c = c[:, None]
    if c.ndim != 2 or len(c) != len(x):
        raise ValueError(f"concepts must have shape [N, K] with N = {len(x)}; got {list(c.shape)}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    if isinstance(C, bool) or not isinstance(C, (int, float)) or not C > 0:
        raise ValueError(f"C must be a positive number; got {C!r}")
    sigma = x.std(0)
    sigma[sigma == 0] = 1.0
    z = (x - x.mean(0)) / sigma
    out = np.zeros((c.shape[1], x.shape[1]))
    for j in range(c.shape[1]):
        y = c[:, j] > threshold
        if y.all() or not y.any():
            raise ValueError(f"concepts[:, {j}] must hold both present and absent examples (above and at or below "
                             f"threshold={threshold}); got {int(y.sum())} present of {len(y)}")
        w = LogisticRegression(C=float(C), max_iter=5000).fit(z, y).coef_[0] / sigma
        out[j] = w / max(np.linalg.norm(w), 1e-30)
    return out


def segment_overlap(result: ACEResult, masks) -> np.ndarray:
    """For each concept of an :func:`ace` result, the mean share of its segments' pixels that lie
    inside ``masks`` (bool [N, H, W], one per discovery image, e.g. a lesion or an artefact mask):
    ``mean_s |segment_s & mask_{image(s)}| / |segment_s|`` over the concept's segments. Float [K]
    (1: every segment lies wholly inside the masked region; 0: none touches it)."""
    m = np.asarray(masks, dtype=bool)
    if m.ndim != 3 or m.shape[1:] != result.masks.shape[1:]:
        raise ValueError(f"masks must have shape [N, H, W] with H, W = {list(result.masks.shape[1:])}; "
                         f"got {list(m.shape)}")
    if len(m) <= int(result.image_index.max(initial=-1)):
        raise ValueError(f"masks must hold one mask per discovery image ({int(result.image_index.max()) + 1}); "
                         f"got {len(m)}")
    out = []
    for concept in result.concepts:
        seg = result.masks[concept.members]
        inside = (seg & m[result.image_index[concept.members]]).sum((1, 2))
        out.append(float((inside / np.maximum(seg.sum((1, 2)), 1)).mean()))
    return np.asarray(out)
