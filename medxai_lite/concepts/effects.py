"""The causal concept effect with true interventions, and how well an explanation ranks it.

**CaCE** (Goyal et al. 2019, "Explaining Classifiers with Causal Concept Effect"): the effect of a
concept ``C`` on the probability the model gives class ``y`` is

    CaCE(C, y) = E_x[ p(y | do(C = high)) ] - E_x[ p(y | do(C = low)) ],

the average change of the class probability when the concept alone is switched. Goyal et al.
approximate ``do(.)`` with a generative model; the phantoms render it exactly:
:func:`medxai_lite.data.intervene` re-draws the same images with the concept forced and every
other random number untouched, so the expectation runs over **the same images** in both arms, on
the images where the intervention acts (:func:`medxai_lite.concepts.intervention_arms`). Its
uncertainty is a bootstrap interval over those images (paired differences).

A probability cannot move where the model is already sure: a class the model gives 0.001 on
both arms shows no effect, however far its logit moved. ``scale="log_odds"`` measures the same
paired difference on the class's log-odds instead,

    log-odds_y(x) = log p(y | x) / (1 - p(y | x)) = z_y(x) - log sum_{j != y} exp z_j(x),

computed from the logits ``z`` (for two classes, ``z_1 - z_0``), which does not saturate.

:func:`rank_agreement` then asks whether an explanation orders the concepts as the true effects do
(Spearman's rho and Kendall's tau, with an exact or Monte-Carlo permutation p-value).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .._utils import check_choice, check_eval_model, check_positive_int, model_device

__all__ = ["ConceptEffect", "causal_concept_effect", "causal_concept_effects", "predict_proba", "predict_log_odds", "SCALES",
           "RankAgreement", "rank_agreement"]


@torch.no_grad()
def _predict(model: nn.Module, dataset, index, batch_size: int, transform, dtype) -> np.ndarray:
    """``transform(logits)`` ``[n, C]`` of ``model`` on the items ``index`` (default: all) of ``dataset``."""
    check_eval_model(model, used_by="predictions")
    batch_size = check_positive_int("batch_size", batch_size)
    index = np.arange(len(dataset)) if index is None else np.asarray(index, dtype=np.int64)
    dev = model_device(model)
    out = []
    for s in range(0, len(index), batch_size):
        x = dataset.batch([int(i) for i in index[s:s + batch_size]])["image"].to(dev)
        out.append(transform(model(x)).cpu().numpy())
    if not out:
        return np.zeros((0, len(getattr(dataset, "classes", ()) or ())), dtype)
    return np.concatenate(out)


def _log_odds(z: torch.Tensor) -> torch.Tensor:
    """``z_k - logsumexp_{j != k} z_j`` per class, in float64."""
    z = z.double()
    others = [torch.logsumexp(torch.cat([z[:, :k], z[:, k + 1:]], 1), 1) for k in range(z.shape[1])]
    return z - torch.stack(others, 1)


def predict_proba(model: nn.Module, dataset, index=None, batch_size: int = 64) -> np.ndarray:
    """Softmax probabilities ``[n, C]`` of ``model`` on the items ``index`` (default: all) of ``dataset``."""
    return _predict(model, dataset, index, batch_size, lambda z: torch.softmax(z.float(), 1), np.float32)


#: What :func:`causal_concept_effect` differences: the class probabilities or their log-odds.
SCALES = ("probability", "log_odds")


def predict_log_odds(model: nn.Module, dataset, index=None, batch_size: int = 64) -> np.ndarray:
    """Log-odds ``[n, C]`` of every class, ``z_k - logsumexp_{j != k} z_j`` from the logits ``z`` of
    ``model`` on the items ``index`` (default: all) of ``dataset``; exact where the softmax saturates."""
    return _predict(model, dataset, index, batch_size, _log_odds, np.float64)


@dataclass
class ConceptEffect:
    """The causal effect of one concept on every class probability (:func:`causal_concept_effect`).

    ``effect``, ``ci_low``, ``ci_high``: float [C] (the mean paired difference and its bootstrap
    interval); ``differences``: float [n, C], one row per image the intervention acts on
    (``index``); ``values``: the ``(low, high)`` concept values compared; ``scale``: what was
    differenced, ``"probability"`` or ``"log_odds"`` (``extra["p_high"]`` and ``extra["p_low"]``
    hold both arms' per-image values on that scale).
    """

    concept: str
    classes: tuple
    effect: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    differences: np.ndarray
    index: np.ndarray
    values: tuple
    confidence_level: float = 0.95
    extra: dict = field(default_factory=dict)
    scale: str = "probability"

    @property
    def n(self) -> int:
        return len(self.index)

    def on(self, target) -> float:
        """The effect on class ``target`` (an index or a class name)."""
        k = self.classes.index(target) if isinstance(target, str) and target in self.classes else target
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < len(self.classes):
            raise ValueError(f"target must be a class index in 0..{len(self.classes) - 1} or one of "
                             f"{', '.join(self.classes)}; got {target!r}")
        return float(self.effect[int(k)])


def causal_concept_effect(model: nn.Module, dataset, concept: str, *, low: float = 0.0, high: float = 1.0,
                          confidence_level: float = 0.95, n_resamples: int = 2000, batch_size: int = 64,
                          seed: int = 0, scale: str = "probability") -> ConceptEffect:
    """CaCE of ``concept`` on every class of ``model``, with true interventions (module docstring).

    Parameters
    ----------
    model : nn.Module in eval mode, taking ``dataset``'s images (``classes`` are the dataset's when
        the model has one output per class, else ``"0", "1", ...``)
    dataset : a phantom dataset from :func:`medxai_lite.load_dataset`
    concept : str
        A concept of :data:`medxai_lite.data.INTERVENTIONS` for this phantom (``"artefact"``: the
        shortcut artefact).
    low, high : float
        The values compared for a continuous concept (dermoscopy ABCD); binary ones use 0 and 1.
    confidence_level, n_resamples, seed
        The bootstrap interval (BCa, :func:`medxai_lite.metrics.bootstrap_ci`) of each class's effect.
    scale : {"probability", "log_odds"}
        Difference the class probabilities (Goyal et al.) or their log-odds (module docstring).

    Returns
    -------
    ConceptEffect

    Example
    -------
    >>> test = load_dataset("phantom-brain-mri", "test", image_size=96, n=200)     # doctest: +SKIP
    >>> causal_concept_effect(model, test, "ring enhancement").on("glioma")        # doctest: +SKIP
    """
    from ..metrics.stats import bootstrap_ci
    from .sets import intervention_arms

    check_eval_model(model, used_by="causal concept effects")
    check_choice("scale", scale, SCALES)
    n_resamples = check_positive_int("n_resamples", n_resamples, minimum=100)
    if isinstance(confidence_level, bool) or not isinstance(confidence_level, float) or not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level must be a float in (0, 1); got {confidence_level!r}")
    arms = intervention_arms(dataset, concept, low=low, high=high)
    classes = tuple(dataset.classes)
    if len(arms.index) == 0:
        raise ValueError(f"concept {concept!r}: the intervention acts on no image of this dataset (no lesion?)")
    predict = predict_proba if scale == "probability" else predict_log_odds
    p_high = predict(model, arms.high, arms.index, batch_size)
    p_low = predict(model, arms.low, arms.index, batch_size)
    if p_high.shape[1] != len(classes):          # a model of another label (e.g. one concept): its outputs by index
        classes = tuple(str(k) for k in range(p_high.shape[1]))
    diff = (p_high - p_low).astype(np.float64)
    lows, highs = [], []
    for c in range(diff.shape[1]):
        lo, hi = bootstrap_ci(diff[:, c], confidence_level=confidence_level, n_resamples=n_resamples, seed=seed)
        lows.append(lo)
        highs.append(hi)
    return ConceptEffect(concept, classes, diff.mean(0), np.array(lows), np.array(highs), diff, arms.index,
                         arms.values, confidence_level,
                         extra={"p_high": p_high, "p_low": p_low, "natural_high": arms.natural_high}, scale=scale)


def causal_concept_effects(model: nn.Module, dataset, concepts: Sequence[str] | None = None, **options):
    """:func:`causal_concept_effect` of each concept (default: every concept the phantom can force),
    as a pandas DataFrame: one row per (concept, class) with ``effect``, ``ci_low``, ``ci_high``, ``n``.
    ``.attrs["effects"]`` keeps the :class:`ConceptEffect` objects."""
    import pandas as pd

    from ..data import INTERVENTIONS

    name = (getattr(dataset, "generation", None) or {}).get("name")
    if concepts is None:
        if name not in INTERVENTIONS:
            raise ValueError(f"dataset must be a phantom dataset made by load_dataset; got {dataset!r}")
        concepts = list(INTERVENTIONS[name])
    effects = {c: causal_concept_effect(model, dataset, c, **options) for c in concepts}
    rows = [{"concept": c, "class": cls, "effect": e.effect[k], "ci_low": e.ci_low[k], "ci_high": e.ci_high[k],
             "n": e.n} for c, e in effects.items() for k, cls in enumerate(e.classes)]
    frame = pd.DataFrame(rows)
    frame.attrs["effects"] = effects
    return frame


@dataclass
class RankAgreement:
    """Spearman's rho and Kendall's tau between two scorings of the same concepts, with permutation
    p-values (two-sided); ``exact``: every permutation was enumerated."""

    concepts: tuple
    spearman: float
    kendall: float
    p_spearman: float
    p_kendall: float
    n_permutations: int
    exact: bool


def _align(a, b) -> tuple[tuple, np.ndarray, np.ndarray]:
    if isinstance(a, Mapping) != isinstance(b, Mapping):
        raise ValueError("tcav_scores and effects must both be dicts {concept: value} or both sequences")
    if isinstance(a, Mapping):
        missing = sorted(set(a) ^ set(b))
        if missing:
            raise ValueError(f"tcav_scores and effects must score the same concepts; differ on {missing}")
        names = tuple(a)
        x, y = [a[k] for k in names], [b[k] for k in names]
    else:
        x, y = list(a), list(b)
        names = tuple(str(i) for i in range(len(x)))
    try:
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("tcav_scores and effects must hold numbers") from None
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"tcav_scores and effects must be 1-D of equal length; got shapes {x.shape} and {y.shape}")
    if len(x) < 3:
        raise ValueError(f"tcav_scores must score at least 3 concepts for a rank correlation; got {len(x)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("tcav_scores and effects must be finite")
    return names, x, y


def rank_agreement(tcav_scores, effects, *, n_permutations: int = 9999, seed: int = 0) -> RankAgreement:
    """How well ``tcav_scores`` rank the concepts as ``effects`` do, over concepts.

    ``tcav_scores`` and ``effects``: dicts ``{concept: value}`` with the same keys (or two equal-length
    sequences). Returns Spearman's rho and Kendall's tau (``scipy.stats``), each with a two-sided
    permutation p-value over the orders ``pi`` of one side (``scipy.stats.permutation_test``,
    ``permutation_type="pairings"``: twice the smaller of ``P(stat(pi(x), y) >= stat(x, y))`` and
    ``P(stat(pi(x), y) <= stat(x, y))``, at most 1): exact (all ``K!`` orders) when
    ``K! <= n_permutations``, else ``n_permutations`` seeded random orders. With K concepts in
    perfect agreement the exact p-value is ``2 / K!`` (0.0167 for five). A constant input gives NaN
    correlations and p = 1.

    >>> rank_agreement({"a": 0.9, "b": 0.5, "c": 0.1}, {"a": 0.3, "b": 0.2, "c": -0.1}).spearman
    1.0
    """
    import math

    from scipy.stats import kendalltau, permutation_test, spearmanr

    names, x, y = _align(tcav_scores, effects)
    n_permutations = check_positive_int("n_permutations", n_permutations, minimum=99)
    check_positive_int("seed", seed, minimum=0)
    exact = math.factorial(len(x)) <= n_permutations
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return RankAgreement(names, float("nan"), float("nan"), 1.0, 1.0, 0, exact)
    out = {}
    for label, fn in (("spearman", lambda a: spearmanr(a, y).statistic),
                      ("kendall", lambda a: kendalltau(a, y).statistic)):
        # one sample permuted against the fixed other: K! distinct pairings
        res = permutation_test((x,), fn, permutation_type="pairings", vectorized=False,
                               n_resamples=n_permutations, alternative="two-sided", rng=np.random.default_rng(seed))
        out[label] = (float(res.statistic), float(min(1.0, res.pvalue)))
    return RankAgreement(names, out["spearman"][0], out["kendall"][0], out["spearman"][1], out["kendall"][1],
                         math.factorial(len(x)) if exact else n_permutations, exact)
