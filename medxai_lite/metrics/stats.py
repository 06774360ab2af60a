"""Statistics for comparing explanation methods on per-image scores.

Chaddad et al. (2025) compare five CAM methods with paired t-tests. Here: paired t-tests between
every pair of methods (``scipy.stats.ttest_rel``), the paired effect size Cohen's ``d_z``, Holm
and Bonferroni corrections for the many comparisons, and bootstrap confidence intervals
(``scipy.stats.bootstrap``). Scores are *paired*: the same images, in the same order, for every
method, given as a mapping ``{method: array [N]}`` or a wide DataFrame (one column per method;
:func:`to_wide` turns a tidy table into one).

Example
-------
>>> scores = {"gradcam++": s1, "xgradcam": s2, "layercam": s3}          # arrays [N]
>>> paired_tests(scores)[["method_a", "method_b", "t", "p", "p_holm", "d_z"]]
"""
from __future__ import annotations

import itertools
import warnings
from typing import Callable, Mapping

import numpy as np

from .._utils import check_choice

__all__ = [
    "CORRECTIONS", "cohens_dz", "holm", "bonferroni", "adjust_pvalues", "bootstrap_ci",
    "paired_tests", "method_summary", "to_wide",
]

#: Multiple-comparison corrections understood by :func:`adjust_pvalues` and :func:`paired_tests`.
CORRECTIONS = ("holm", "bonferroni", "none")


def cohens_dz(a, b) -> float:
    """Cohen's d for paired samples, ``d_z``: the mean difference over its standard deviation.

    .. math:: d_z = \\frac{\\bar d}{s_d}, \\qquad d_i = a_i - b_i,
              \\quad s_d = \\sqrt{\\tfrac{1}{n-1}\\sum_i (d_i - \\bar d)^2}

    (Cohen 1988; Lakens 2013, Front. Psychol. 4:863). ``d_z = t / sqrt(n)`` for the paired t
    statistic. NaN for fewer than two pairs or when every difference is zero; +-inf when the
    differences are all equal but not zero.

    Example
    -------
    >>> cohens_dz([1.0, 2.0, 3.0], [0.5, 1.0, 2.5])
    2.3094010767585
    """
    d = _paired(a, b)
    if len(d) < 2:
        return float("nan")
    mean, sd = d.mean(), d.std(ddof=1)
    if sd == 0:
        return float("nan") if mean == 0 else float(np.copysign(np.inf, mean))
    return float(mean / sd)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979, Scand. J. Statist. 6:65-70).

    With the ``m`` p-values sorted ascending, ``p_(1) <= ... <= p_(m)``:

    .. math:: \\tilde p_{(i)} = \\min\\Big(1, \\max_{j \\le i} (m - j + 1)\\, p_{(j)}\\Big)

    returned in the input order. Rejecting where ``p_adj <= alpha`` controls the family-wise
    error rate at ``alpha`` and is never less powerful than Bonferroni. NaN entries stay NaN
    and do not count towards ``m``.

    Example
    -------
    >>> holm([0.01, 0.04, 0.03, 0.005])
    array([0.03, 0.06, 0.06, 0.02])
    """
    p = _pvalues(pvalues)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m:
        order = ok[np.argsort(p[ok], kind="stable")]
        scaled = (m - np.arange(m)) * p[order]
        out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def bonferroni(pvalues) -> np.ndarray:
    """Bonferroni-adjusted p-values, ``min(1, m p)`` (``m`` = number of non-NaN p-values).

    Example
    -------
    >>> bonferroni([0.01, 0.04, 0.03, 0.005])
    array([0.04, 0.16, 0.12, 0.02])
    """
    p = _pvalues(pvalues)
    return np.minimum(1.0, p * np.count_nonzero(~np.isnan(p)))


def adjust_pvalues(pvalues, method: str = "holm") -> np.ndarray:
    """Adjust p-values for multiple comparisons: ``"holm"``, ``"bonferroni"`` or ``"none"``."""
    check_choice("method", method, CORRECTIONS)
    if method == "holm":
        return holm(pvalues)
    if method == "bonferroni":
        return bonferroni(pvalues)
    return _pvalues(pvalues).copy()


def bootstrap_ci(values, *, statistic: Callable = np.mean, confidence_level: float = 0.95,
                 n_resamples: int = 9999, method: str = "BCa", seed: int = 0) -> tuple[float, float]:
    """Bootstrap confidence interval of ``statistic(values)`` via ``scipy.stats.bootstrap``.

    ``method`` ``"BCa"`` (bias-corrected and accelerated, Efron 1987; the default),
    ``"percentile"`` or ``"basic"``; resampling is seeded. All-equal values give the
    degenerate interval ``(v, v)``; fewer than two values give ``(nan, nan)``; NaN values are
    refused (drop them first: the table functions do, and report ``n``). Where BCa is undefined
    (e.g. very few distinct values) it falls back to the percentile interval with a warning.

    Example
    -------
    >>> bootstrap_ci(np.array([0.1, 0.3, 0.2, 0.4, 0.25]), n_resamples=2000)
    (0.17, 0.33)                                                # roughly
    """
    from scipy.stats import bootstrap

    check_choice("method", method, ("BCa", "percentile", "basic"))
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level must be in (0, 1); got {confidence_level!r}")
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if np.isnan(x).any():
        raise ValueError("values contain NaN; drop them before bootstrapping")
    if len(x) < 2:
        return (float("nan"), float("nan"))
    if np.all(x == x[0]):
        v = float(statistic(x))
        return (v, v)

    def run(kind):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # scipy's DegenerateDataWarning: handled below
            res = bootstrap((x,), statistic, n_resamples=n_resamples, confidence_level=confidence_level,
                            method=kind, rng=np.random.default_rng(seed))
        return float(res.confidence_interval.low), float(res.confidence_interval.high)

    low, high = run(method)
    if np.isnan(low) or np.isnan(high):
        warnings.warn(f"the {method} bootstrap interval is undefined for these values; using the percentile "
                      "interval instead", RuntimeWarning, stacklevel=2)
        low, high = run("percentile")
    return low, high


def paired_tests(scores, *, alternative: str = "two-sided", correction: str = "holm", alpha: float = 0.05,
                 confidence_level: float = 0.95, n_resamples: int = 9999, seed: int = 0,
                 reference: str | None = None):
    """Paired t-test, effect size and bootstrap interval for every pair of methods.

    With ``reference`` (a method name), each other method is tested against it alone
    (``method_a`` the method, ``method_b`` the reference) and the correction runs over those
    comparisons: e.g. "does each CAM beat the random map?" with ``alternative="greater"``.

    For methods ``a`` and ``b`` with per-image scores on the same images: ``scipy.stats.ttest_rel``
    on ``a - b`` (images where either score is NaN are dropped, pairwise; ``n`` says how many
    remain), Cohen's :func:`cohens_dz`, a bootstrap CI of the mean difference
    (:func:`bootstrap_ci`), and Holm and Bonferroni adjustments over all pairs.

    Parameters
    ----------
    scores : mapping {method: array [N]} or wide DataFrame (one column per method)
    alternative : {"two-sided", "less", "greater"}
        As in ``ttest_rel``, for ``mean(a - b)``.
    correction : {"holm", "bonferroni", "none"}
        Which adjusted p-value decides ``significant``.
    alpha : float
    confidence_level, n_resamples, seed : for the bootstrap interval

    Returns
    -------
    pandas.DataFrame, one row per pair (in the order of the methods):
    ``method_a, method_b, n, mean_a, mean_b, mean_diff, ci_low, ci_high, t, df, p, d_z,
    p_holm, p_bonferroni, significant``. Identical scores give ``t = p = NaN`` (as SciPy).

    Example
    -------
    >>> paired_tests({"gradcam": g, "xgradcam": x, "layercam": l}, correction="holm")
    """
    import pandas as pd
    from scipy.stats import ttest_rel

    check_choice("alternative", alternative, ("two-sided", "less", "greater"))
    check_choice("correction", correction, CORRECTIONS)
    table = _as_table(scores)
    if len(table) < 2:
        raise ValueError(f"scores must hold at least two methods to compare; got {list(table)}")
    if reference is not None:
        check_choice("reference", reference, list(table))
        pairs = [(m, reference) for m in table if m != reference]
    else:
        pairs = list(itertools.combinations(table, 2))
    rows = []
    for a, b in pairs:
        x, y = table[a], table[b]
        ok = ~(np.isnan(x) | np.isnan(y))
        x, y = x[ok], y[ok]
        n = len(x)
        if n >= 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)   # zero-variance differences -> NaN, as documented
                res = ttest_rel(x, y, alternative=alternative)
            t, p, df = float(res.statistic), float(res.pvalue), float(res.df)
            low, high = bootstrap_ci(x - y, confidence_level=confidence_level, n_resamples=n_resamples, seed=seed)
        else:
            t = p = df = low = high = float("nan")
        rows.append(dict(method_a=a, method_b=b, n=n, mean_a=_mean(x), mean_b=_mean(y), mean_diff=_mean(x - y),
                         ci_low=low, ci_high=high, t=t, df=df, p=p, d_z=cohens_dz(x, y)))
    df = pd.DataFrame(rows)
    df["p_holm"] = holm(df["p"].to_numpy())
    df["p_bonferroni"] = bonferroni(df["p"].to_numpy())
    decisive = {"holm": "p_holm", "bonferroni": "p_bonferroni", "none": "p"}[correction]
    df["significant"] = df[decisive].to_numpy() <= alpha
    return df


def method_summary(scores, *, confidence_level: float = 0.95, n_resamples: int = 9999, seed: int = 0):
    """Per-method mean, standard deviation and bootstrap CI of the mean (NaN scores dropped).

    Returns a pandas DataFrame with columns ``method, n, n_nan, mean, sd, ci_low, ci_high``.

    Example
    -------
    >>> method_summary({"gradcam": g, "xgradcam": x})
    """
    import pandas as pd

    rows = []
    for name, values in _as_table(scores).items():
        x = values[~np.isnan(values)]
        low, high = bootstrap_ci(x, confidence_level=confidence_level, n_resamples=n_resamples, seed=seed)
        rows.append(dict(method=name, n=len(x), n_nan=int(np.isnan(values).sum()), mean=_mean(x),
                         sd=float(x.std(ddof=1)) if len(x) > 1 else float("nan"), ci_low=low, ci_high=high))
    return pd.DataFrame(rows, columns=["method", "n", "n_nan", "mean", "sd", "ci_low", "ci_high"])


def to_wide(frame, *, method: str = "method", image: str = "image", value: str = "value"):
    """A tidy table (one row per method and image) as a wide one (one column per method).

    Raises if a (method, image) pair occurs twice, since pairing would then be ambiguous.

    Example
    -------
    >>> paired_tests(to_wide(df[df.dataset == "phantom-skin"], value="road_combined"))
    """
    missing = [c for c in (method, image, value) if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks the columns {missing}; it has {list(frame.columns)}")
    if frame.duplicated([method, image]).any():
        raise ValueError(f"frame holds repeated ({method}, {image}) pairs; filter it to one score per pair first")
    wide = frame.pivot(index=image, columns=method, values=value)
    return wide[list(dict.fromkeys(frame[method]))]


# --------------------------------------------------------------------------- helpers


def _pvalues(pvalues) -> np.ndarray:
    p = np.asarray(pvalues, dtype=np.float64).reshape(-1)
    ok = p[~np.isnan(p)]
    if ((ok < 0) | (ok > 1)).any():
        raise ValueError("pvalues must lie in [0, 1]")
    return p


def _paired(a, b) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same length; got {len(a)} and {len(b)}")
    return a - b


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else float("nan")


def _as_table(scores) -> dict[str, np.ndarray]:
    if hasattr(scores, "columns") and hasattr(scores, "to_numpy"):      # a wide DataFrame
        table = {str(c): scores[c].to_numpy(dtype=np.float64) for c in scores.columns}
    elif isinstance(scores, Mapping):
        table = {str(k): np.asarray(v, dtype=np.float64).reshape(-1) for k, v in scores.items()}
    else:
        raise TypeError("scores must be a mapping {method: array [N]} or a wide DataFrame (one column per method); "
                        f"got {type(scores).__name__}")
    lengths = {k: len(v) for k, v in table.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"scores must be paired (same images for every method); got lengths {lengths}")
    return table
