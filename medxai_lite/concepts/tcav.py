"""Testing with Concept Activation Vectors (TCAV; Kim et al. 2018), through ``captum.concept.TCAV``.

A **concept activation vector** (CAV) ``v_C^l`` is the normal of a linear classifier that separates
the layer-``l`` activations ``f_l(x)`` of a concept's example images from those of a random set.
The **conceptual sensitivity** of class ``k`` to concept ``C`` at an input ``x`` is the directional
derivative of the class logit ``h_{l,k}`` along the CAV,

    S_{C,k,l}(x) = grad h_{l,k}(f_l(x)) . v_C^l,

and the **TCAV score** of class ``k`` is the share of its inputs ``X_k`` whose logit grows in the
concept's direction,

    TCAV_Q(C, k, l) = |{x in X_k : S_{C,k,l}(x) > 0}| / |X_k|      (the "sign count"),

alongside the magnitude score ``sum_x max(S, 0) / sum_x |S|`` (both 0.5 for a direction the class
does not care about). captum trains the CAVs (here with a seeded scikit-learn logistic regression,
:class:`CAVClassifier`, on the flattened activations), computes the layer gradients (its
``LayerGradientXActivation`` without the multiplication by activations) and the sign count.

**Significance** (Kim et al. 2018, Section 3.2): a CAV from a finite example set can point anywhere,
so the concept is trained against ``m`` different random sets ``R_1..R_m``, giving ``m`` TCAV scores,
and ``m`` CAVs of random sets against the same ``R_1..R_m`` give the scores of a concept that means
nothing. A two-sided Welch t-test compares the two samples of scores; the p-values over the concepts
are adjusted for multiple comparisons (Holm by default, or Bonferroni), and a concept whose
adjusted p-value is below ``alpha`` is significant. Kim et al.'s code pits one random set ``R_0``
against every ``R_j``, which makes the ``m`` null scores share ``R_0``'s quirks (measured on a
phantom model: all ``m`` null scores 1.0); here each null run ``j`` has its own random "concept"
``Q_j`` against ``R_j``, so the null scores are independent, as the concept's are.

**Which layer**: not the last block before global average pooling and a linear head. There the
gradient of a logit is the head's weight row at every position for every input, so ``S_{C,k,l}``
has one sign for all inputs and every TCAV score is 0 or 1. :func:`resolve_layer` therefore
defaults to the stage before it (ResNet18: ``layer3``; the default ResNet14: ``layer2``).

CAVs, activations and classifiers are written by captum to a ``save_path``; :func:`tcav` uses a
temporary folder per call (removed afterwards), so no stale CAV of another model is ever reloaded.
"""
from __future__ import annotations

import re
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch
from torch import nn

from captum.concept._utils.classifier import Classifier

from .._utils import check_choice, check_eval_model, check_images, check_positive_int, model_device

__all__ = ["CAVClassifier", "TCAVResult", "tcav", "resolve_layer", "gradient_alignment"]


class CAVClassifier(Classifier):
    """captum ``Classifier``: a scikit-learn L2 logistic regression on the flattened activations.

    A seeded share ``test_split`` of the examples (the same for the same seed and pair of sets) is
    held out to measure the CAV's accuracy, as captum's default classifier and Kim et al. do;
    ``weights()`` are the coefficients, one row per label in ``classes()`` order (for two labels
    ``[-w, w]``: each row points towards its label).
    The activations are divided by one number ``s`` (their root mean square norm) before fitting, so
    that ``C`` means the same at any layer: the same fit as ``C / s**2`` on the raw activations.
    """

    def __init__(self, test_split: float = 0.33, C: float = 1.0, seed: int = 0):
        self.test_split, self.C, self.seed = float(test_split), float(C), int(seed)
        self._weights = None
        self._classes = None

    def train_and_eval(self, dataloader, **kwargs):
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        xs, ys = [], []
        for x, y in dataloader:
            xs.append(x.detach().float().cpu())
            ys.append(y.detach().cpu())
        x, y = torch.cat(xs).numpy(), torch.cat(ys).numpy()
        # the split depends on the seed and the pair of sets only, not on what else is trained
        order = np.random.default_rng([self.seed, 4049, *np.unique(y).astype(int).tolist()]).permutation(len(y))
        n_test = int(self.test_split * len(y))
        test, train = order[:n_test], order[n_test:]
        if len(np.unique(y[train])) < 2:          # a tiny set: train on everything
            train, test = order, order[:0]
        scale = float(np.sqrt((x[train] ** 2).sum(1).mean())) or 1.0   # activations' scale, for the solver only
        # one BLAS thread: with a few dozen examples of ~10^4 features, L-BFGS spends its time starting
        # threads (measured: 23 s against 3 s for the 50 fits of one TCAV call on two cores); same result
        with threadpool_limits(1, user_api="blas"):
            model = LogisticRegression(C=self.C, max_iter=2000).fit(x[train] / scale, y[train])
        w = torch.from_numpy(model.coef_.astype(np.float32))
        self._weights = torch.cat([-w, w]) if w.shape[0] == 1 else w
        self._classes = [int(c) for c in model.classes_]
        acc = float((model.predict(x[test] / scale) == y[test]).mean()) if len(test) else float("nan")
        return {"accs": torch.tensor(acc)}

    def weights(self) -> torch.Tensor:
        return self._weights

    def classes(self) -> list:
        return self._classes


@dataclass
class TCAVResult:
    """What :func:`tcav` measured.

    Attributes
    ----------
    concepts : tuple of str
    target : the explained class (an int, or one per input)
    layer : str
        The layer's dotted name.
    scores, magnitudes : float [K, m]
        TCAV sign-count and magnitude scores of each concept against each of the ``m`` random sets.
    random_scores, random_magnitudes : float [m]
        The same for the random sets ``Q_j`` against ``R_j`` (the null distribution).
    cav_accuracy : float [K, m]
        Held-out accuracy of each CAV's classifier (NaN when nothing was held out).
    p_values, p_adjusted : float [K]
        Two-sided Welch t-test of ``scores[k]`` against ``random_scores``, and after ``correction``.
    significant : bool [K]
        ``p_adjusted < alpha``.
    derivatives : float [N, K]
        Per input, the directional derivative along each concept's unit CAV, averaged over the
        ``m`` CAVs (what the sign count aggregates; its sign agrees with the majority sign of the
        ``m`` runs in most cases, not always).
    cavs : float [K, m, F]
        Unit CAVs in the layer's flattened activation space.
    """

    concepts: tuple
    target: object
    layer: str
    scores: np.ndarray
    magnitudes: np.ndarray
    random_scores: np.ndarray
    random_magnitudes: np.ndarray
    cav_accuracy: np.ndarray
    p_values: np.ndarray
    p_adjusted: np.ndarray
    significant: np.ndarray
    derivatives: np.ndarray
    cavs: np.ndarray
    alpha: float = 0.05
    correction: str = "holm"
    extra: dict = field(default_factory=dict)

    @property
    def mean_scores(self) -> np.ndarray:
        """Mean sign-count score of each concept over the random sets, float [K]."""
        return self.scores.mean(1)

    def score(self, concept: str) -> float:
        """The mean TCAV score of ``concept``."""
        if concept not in self.concepts:
            raise ValueError(f"unknown concept {concept!r}; valid: {', '.join(self.concepts)}")
        return float(self.mean_scores[self.concepts.index(concept)])

    def table(self):
        """One row per concept: mean and std of the TCAV score, the random scores' mean, magnitude,
        CAV accuracy, p-value, adjusted p-value and significance (a pandas DataFrame)."""
        import pandas as pd

        return pd.DataFrame({
            "concept": list(self.concepts),
            "tcav": self.scores.mean(1), "tcav_std": self.scores.std(1, ddof=1) if self.scores.shape[1] > 1
            else np.zeros(len(self.concepts)),
            "random_mean": np.full(len(self.concepts), self.random_scores.mean()),
            "magnitude": self.magnitudes.mean(1), "cav_accuracy": np.nanmean(self.cav_accuracy, 1)
            if np.isfinite(self.cav_accuracy).any() else self.cav_accuracy.mean(1),
            "p": self.p_values, f"p_{self.correction}": self.p_adjusted, "significant": self.significant,
        }).set_index("concept")


def resolve_layer(model: nn.Module, layer) -> tuple[str, nn.Module]:
    """``(dotted name, module)`` of ``layer``: a module of ``model``, its name in
    ``model.named_modules()``, a zoo path such as ``"layer4.-1"``, or ``None`` for the zoo
    architecture's second-to-last stage (``ArchSpec.stage_layers[-2]``: ResNet18 ``layer3.-1``, ResNet14 ``layer2.-1``,
    SmallCNN ``features.2``; the last one gives degenerate TCAV scores, see the module docstring)."""
    from ..models.zoo import arch_spec, infer_arch, resolve_module

    names = {m: n for n, m in model.named_modules() if n}
    if layer is None:
        arch = infer_arch(model)
        if arch is None:
            raise ValueError("layer must be given for a model outside the zoo (a module or a dotted name from "
                             "model.named_modules())")
        module = resolve_module(model, arch_spec(arch).stage_layers[-2])
    elif isinstance(layer, nn.Module):
        module = layer
    elif isinstance(layer, str):
        try:
            module = model.get_submodule(layer)
        except AttributeError:
            try:
                module = resolve_module(model, layer)
            except (AttributeError, IndexError, TypeError):
                module = None
        if module is None:
            import difflib

            close = difflib.get_close_matches(layer, list(names.values()), n=5, cutoff=0.5)
            raise ValueError(f"layer {layer!r} is not a module of this model"
                             + (f"; closest: {', '.join(close)}" if close else ""))
    else:
        raise ValueError(f"layer must be an nn.Module, a dotted module name or None; got {type(layer).__name__}")
    if module not in names:
        raise ValueError(f"layer {type(module).__name__} is not a submodule of this model")
    return names[module], module


#: captum concept id of the first random set (concepts are numbered 0..K-1): a random pair's CAV does
#: not depend on how many concepts are tested beside it.
_RANDOM_ID = 1_000_000


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _as_examples(value, name: str) -> torch.Tensor:
    from .sets import ConceptSet

    x = value.positives if isinstance(value, ConceptSet) else value
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"concepts[{name!r}] must be a ConceptSet or an image tensor [n, 3, H, W]; "
                         f"got {type(x).__name__}")
    x = check_images(x)
    if len(x) < 2:
        raise ValueError(f"concepts[{name!r}] must hold at least 2 example images; got {len(x)}")
    return x


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(1e-12)


def _ttest(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Welch t-test p-value; when both samples are constant: 1 if equal, else 0."""
    from scipy.stats import ttest_ind

    if a.std() == 0 and b.std() == 0:
        return 1.0 if np.isclose(a.mean(), b.mean()) else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(a, b, equal_var=False).pvalue)
    return 1.0 if np.isnan(p) else p


def _reusing_tcav():
    """``captum.concept.TCAV`` that computes each concept's activations once per call.

    captum 0.9's ``TCAV.load_cavs`` asks ``AV.exists(save_path, model_id, layer, identifier)``, in the
    argument order from before ``AV`` put the identifier first (captum pull request 801), so it never
    finds the activations it saved and computes them again for every experiment a concept takes part
    in: each random set ``R_j`` once per concept plus once for the null, ``K + 1`` forward passes
    instead of one. This subclass skips a concept whose activations for a layer are already saved
    (asking in the right order); the activations, hence every number, are the same.
    """
    from captum._utils.av import AV
    from captum.concept import TCAV

    class ReusingTCAV(TCAV):
        def generate_activation(self, layers, concept):
            layers = [layers] if isinstance(layers, str) else list(layers)
            missing = [name for name in layers
                       if not AV.exists(self.save_path, self.model_id, concept.identifier, name)]
            if missing:
                super().generate_activation(missing, concept)

    return ReusingTCAV


def tcav(model: nn.Module, layer, target, concepts: Mapping, inputs, random, *, n_random: int = 10,
         n_examples: int | None = None, alpha: float = 0.05, correction: str = "holm", test_split: float = 0.33,
         C: float = 1.0, seed: int = 0, batch_size: int = 64) -> TCAVResult:
    """TCAV scores of ``concepts`` for class ``target`` of ``model`` at ``layer``, with Kim et al.'s
    significance test against random concepts (formulas in the module docstring).

    Parameters
    ----------
    model : nn.Module in eval mode
    layer : module, dotted name or None
        Where the CAVs live (``None``: the zoo architecture's second-to-last stage, :func:`resolve_layer`).
    target : int or sequence of N ints
        The class whose logit is differentiated (one per input allowed).
    concepts : dict name -> ConceptSet or image tensor [n, 3, H, W]
        The concepts' example images (:func:`medxai_lite.concepts.concept_sets`; a ConceptSet's
        positives are used).
    inputs : Tensor [N, 3, H, W]
        The images whose sensitivities are counted (Kim et al.: the images of class ``target``).
    random : dataset or Tensor [M, 3, H, W]
        The pool the random sets are drawn from (:func:`random_sets`). Keep it apart from the
        concepts' source images: a random set holding a concept example puts one image under both
        labels of that CAV's classifier (the registry's ``"tcav"`` draws it separately).
    n_random : int
        ``m``, the number of random counterparts (>= 2 for the t-test).
    n_examples : int, optional
        Images per random set (default: the size of the largest concept set).
    alpha, correction : float, {"holm", "bonferroni", "none"}
        Significance level and multiple-comparison adjustment over the concepts.
    test_split, C : float
        Held-out share for the CAV accuracy; inverse L2 strength of the logistic regression.
    seed : int
        Random sets and classifier splits.

    Returns
    -------
    TCAVResult

    Example
    -------
    >>> sets = concept_sets(train, ["colour variegation", "asymmetry"], n=40)           # doctest: +SKIP
    >>> result = tcav(model, None, 1, sets, melanomas, train, n_random=10)            # doctest: +SKIP
    >>> result.table()                                                                  # doctest: +SKIP
    """
    from captum.attr import LayerGradientXActivation
    from captum.concept import Concept

    from ..metrics.stats import CORRECTIONS, adjust_pvalues
    from .sets import random_sets

    check_eval_model(model, used_by="TCAV")
    inputs = check_images(inputs)
    n_random = check_positive_int("n_random", n_random, minimum=2)
    batch_size = check_positive_int("batch_size", batch_size)
    check_positive_int("seed", seed, minimum=0)
    check_choice("correction", correction, CORRECTIONS)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha!r}")
    if isinstance(test_split, bool) or not isinstance(test_split, (int, float)) or not 0 <= test_split < 1:
        raise ValueError(f"test_split must lie in [0, 1); got {test_split!r}")
    if not isinstance(concepts, Mapping) or not concepts:
        raise ValueError(f"concepts must be a non-empty dict name -> ConceptSet or image tensor; got {concepts!r}")
    names = list(concepts)
    if not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"concepts must be keyed by non-empty concept names; got {names!r}")
    examples = [_as_examples(concepts[n], n) for n in names]
    shapes = {tuple(x.shape[1:]) for x in examples} | {tuple(inputs.shape[1:])}
    if len(shapes) != 1:
        raise ValueError(f"concepts and inputs must hold images of one shape; got {sorted(shapes)}")
    n_examples = max(len(x) for x in examples) if n_examples is None else check_positive_int("n_examples", n_examples)
    randoms = random_sets(random, n_examples, 2 * n_random, seed=seed)       # R_1..R_m, then Q_1..Q_m
    if tuple(randoms[0].shape[1:]) not in shapes:
        raise ValueError(f"random must hold images of shape {list(inputs.shape[1:])}; got {list(randoms[0].shape[1:])}")
    layer_name, module = resolve_layer(model, layer)
    dev = model_device(model)
    with torch.no_grad():
        n_classes = model(inputs[:1].to(dev)).shape[-1]
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        target_arg = int(target)
        wrong = not 0 <= target_arg < n_classes
    else:
        try:
            target_arg = torch.as_tensor(np.asarray(target), dtype=torch.long).to(dev)
        except (TypeError, ValueError):
            raise ValueError(f"target must be an int or one class index per input; got {target!r}") from None
        wrong = target_arg.shape != (len(inputs),) or bool(((target_arg < 0) | (target_arg >= n_classes)).any())
    if wrong:
        raise ValueError(f"target must be a class index in 0..{n_classes - 1}, or one per input ({len(inputs)}); "
                         f"got {target!r}")

    def loader(x):
        return torch.utils.data.DataLoader(x.to(dev), batch_size=batch_size)

    K, m = len(names), n_random
    concept_objs = [Concept(k, _safe(n), loader(x)) for k, (n, x) in enumerate(zip(names, examples))]
    random_objs = [Concept(_RANDOM_ID + j, f"random{j}", loader(x)) for j, x in enumerate(randoms)]
    experiments = [[c, random_objs[j]] for c in concept_objs for j in range(m)]
    experiments += [[random_objs[m + j], random_objs[j]] for j in range(m)]
    from captum.concept._utils.common import concepts_to_str

    with tempfile.TemporaryDirectory(prefix="medxai-tcav-") as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*weights_only.*")
        tool = _reusing_tcav()(model, [layer_name], model_id="model",
                               classifier=CAVClassifier(test_split, C, seed),
                               layer_attr_method=LayerGradientXActivation(model, module, multiply_by_inputs=False),
                               save_path=tmp + "/")
        scores = tool.interpret(inputs.to(dev), experiments, target=target_arg)
        sign, accs, cavs = np.zeros(len(experiments)), np.zeros(len(experiments)), []
        for e, exp in enumerate(experiments):
            key = concepts_to_str(exp)
            sign[e] = float(scores[key][layer_name]["sign_count"][0])
            stats = tool.cavs[key][layer_name].stats
            row = list(stats["classes"]).index(exp[0].id)
            cavs.append(_unit(torch.as_tensor(stats["weights"])[row].float()))
            accs[e] = float(stats["accs"])
        # the same layer gradients captum counted, kept per input for the derivatives
        grads = []
        for s in range(0, len(inputs), batch_size):
            t = target_arg if isinstance(target_arg, int) else target_arg[s:s + batch_size]
            g = tool.layer_attr_method.attribute(inputs[s:s + batch_size].to(dev), target=t)
            grads.append(g.detach().flatten(1).float().cpu())
    grads = torch.cat(grads)
    cav_matrix = torch.stack(cavs)                                     # [E, F]
    deriv = (grads @ cav_matrix.T).numpy()                             # [N, E]
    pos = np.clip(deriv, 0, None).sum(0)
    mag = np.where(np.abs(deriv).sum(0) > 0, pos / np.maximum(np.abs(deriv).sum(0), 1e-30), 0.5)

    c_sign, r_sign = sign[:K * m].reshape(K, m), sign[K * m:]
    p = np.array([_ttest(c_sign[k], r_sign) for k in range(K)])
    p_adj = adjust_pvalues(p, correction)
    return TCAVResult(
        concepts=tuple(names), target=target if isinstance(target_arg, int) else np.asarray(target), layer=layer_name,
        scores=c_sign, magnitudes=mag[:K * m].reshape(K, m), random_scores=r_sign, random_magnitudes=mag[K * m:],
        cav_accuracy=accs[:K * m].reshape(K, m), p_values=p, p_adjusted=p_adj, significant=p_adj < alpha,
        derivatives=deriv[:, :K * m].reshape(len(inputs), K, m).mean(2).astype(np.float32),
        cavs=cav_matrix[:K * m].reshape(K, m, -1).numpy(), alpha=float(alpha), correction=correction,
        extra={"random_accuracy": accs[K * m:], "sign_from_derivatives": (deriv > 0).mean(0)})


def gradient_alignment(model: nn.Module, layer, target, inputs, *, batch_size: int = 64) -> dict:
    """How much the layer gradients of ``inputs`` point the same way: why TCAV scores saturate.

    With ``g_i = grad h_{l,k}(f_l(x_i))`` the gradient of class ``target``'s logit with respect to
    the activations at ``layer`` (flattened), this returns the cosine similarities

        cos_ij = g_i . g_j / (|g_i| |g_j|)

    as ``{"cosine": float [N, N], "mean": mean of cos_ij over i != j, "min": their minimum}``. When
    every ``cos_ij`` is close to 1, the directional derivative ``S_C(x_i) = g_i . v_C`` has the same
    sign for every input whatever the CAV ``v_C`` (unless ``v_C`` is almost orthogonal to them all),
    so each CAV's TCAV score is 0 or 1, for a concept and for a random direction alike.

    ``layer``: as in :func:`tcav` (``None``: the zoo architecture's second-to-last stage);
    ``target``: an int or one class per input; ``inputs``: Tensor [N >= 2, 3, H, W].
    The gradients are captum's ``LayerGradientXActivation`` without the multiplication, the ones
    :func:`tcav` uses.
    """
    from captum.attr import LayerGradientXActivation

    check_eval_model(model, used_by="layer gradients")
    inputs = check_images(inputs)
    if len(inputs) < 2:
        raise ValueError(f"inputs must hold at least 2 images to compare their gradients; got {len(inputs)}")
    batch_size = check_positive_int("batch_size", batch_size)
    _, module = resolve_layer(model, layer)
    dev = model_device(model)
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        targets = torch.full((len(inputs),), int(target), dtype=torch.long)
    else:
        targets = torch.as_tensor(np.asarray(target), dtype=torch.long)
        if targets.shape != (len(inputs),):
            raise ValueError(f"target must be an int or one class index per input ({len(inputs)}); got {target!r}")
    with torch.no_grad():
        n_classes = model(inputs[:1].to(dev)).shape[-1]
    if bool(((targets < 0) | (targets >= n_classes)).any()):
        raise ValueError(f"target must be a class index in 0..{n_classes - 1}; got {target!r}")
    method = LayerGradientXActivation(model, module, multiply_by_inputs=False)
    grads = []
    for s in range(0, len(inputs), batch_size):
        g = method.attribute(inputs[s:s + batch_size].to(dev), target=targets[s:s + batch_size].to(dev))
        grads.append(g.detach().flatten(1).double().cpu())
    g = torch.cat(grads)
    g = g / g.norm(dim=1, keepdim=True).clamp_min(1e-30)
    cos = (g @ g.T).numpy()
    off = cos[~np.eye(len(cos), dtype=bool)]
    return {"cosine": cos.astype(np.float32), "mean": float(off.mean()), "min": float(off.min())}
