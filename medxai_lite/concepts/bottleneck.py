"""Concept bottleneck models on a frozen backbone: Koh et al.'s three trainings, a probabilistic
variant and the post-hoc concept bottleneck.

Every model here reads the **penultimate features** ``phi(x)`` of a trained classifier (the input of
its final linear layer, :func:`medxai_lite.latent.penultimate_features`: 256 numbers for the book's
default ResNet14) and keeps that classifier frozen, so a bottleneck trains in a second on the CPU
instead of retraining a network (Koh et al. train the backbone too; with a frozen one the three
trainings below differ only in how the concept layer and the head are fitted). Features are
standardised with the training split's mean and standard deviation, ``z = (phi(x) - mu) / sigma``.

**Concept bottleneck model** (CBM; Koh et al. 2020, "Concept Bottleneck Models"): ``x -> c -> y``,
with a concept layer ``g(z) = W_c z + b_c`` (one logit per concept, ``c_hat = sigmoid(g(z))``) and a
linear head ``f(c) = W_y c + b_y`` that sees nothing but the K concepts:

- *independent*: ``g = argmin sum_j L_CE(g_j(z), c_j)`` and ``f = argmin L_CE(f(c), y)`` on the
  **true** concepts (at test time ``f`` reads ``c_hat``);
- *sequential*: ``g`` as above, then ``f = argmin L_CE(f(c_hat), y)`` on the predicted concepts;
- *joint*: ``(f, g) = argmin L_CE(f(c_hat), y) + lambda sum_j L_CE(g_j(z), c_j)``.

``L_CE`` on a concept is the binary cross-entropy (with soft targets for the continuous dermoscopy
ABCD values in [0, 1]). **Test-time intervention** replaces a predicted concept by a value (a
clinician's correction): ``predict(images, interventions={"ring enhancement": 1.0})``; with the
linear head the logit of class ``k`` moves by exactly ``W_y[k, j] * (value - c_hat_j)``.

**Probabilistic CBM** (:class:`ProbabilisticBottleneck`): a one-dimensional version of the
probabilistic concept embeddings of ProbCBM (Kim et al. 2023, "Probabilistic Concept Bottleneck
Models"): each concept's logit is a Gaussian ``z_j ~ N(mu_j(x), sigma_j(x)^2)`` (two linear maps of
the features), trained with the reparameterisation trick on the Monte-Carlo concept likelihood, the
class loss on the head applied to sampled concept probabilities, and ProbCBM's KL regulariser
``beta * KL(N(mu, sigma^2) || N(0, 1))``. At test time the concept probability is
``E[sigmoid(z_j)]`` and its uncertainty splits into ``Var[c_j] = E[p(1-p)] + Var[p]`` (data noise +
spread of the model's belief), all by 20-point Gauss-Hermite quadrature (deterministic, no
sampling). ProbCBM's embeddings are multi-dimensional and scored by distances to anchors; this is
the same idea with the embedding reduced to the logit.

**Post-hoc CBM** (PCBM; Yuksekgonul et al. 2023, "Post-hoc Concept Bottleneck Models", ICLR):
a linear probe per concept (scikit-learn logistic regression of ``c_j > 0.5`` on ``z``) gives a
concept vector ``v_j`` (unit norm); the concept scores are the projections ``s_j = z . v_j``
(standardised), an interpretable head is a sparse (L1) logistic regression on ``s``, and the hybrid
PCBM-h adds a residual ``r(z) = W_r z + b_r`` fitted with the head fixed, on what the concepts miss:
``y_hat = f(s) + r(z)``. ``report.metrics`` holds the accuracy of the head alone and with the residual.

Trained bottlenecks are cached like the classifiers (:func:`get_trained_cbm`,
:func:`get_probabilistic_cbm`, :func:`get_posthoc_cbm`): weights plus a JSON report, keyed by the
classifier's cache key and every setting.
"""
from __future__ import annotations

import abc
import hashlib
import json
import time
import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._utils import cache_dir, check_choice, check_positive_int, model_device, profile_settings

__all__ = ["CBM_MODES", "CBM_PROFILES", "ConceptBottleneck", "ProbabilisticBottleneck", "PosthocBottleneck",
           "ConceptBottleneckModel", "ConceptModelReport", "backbone_features", "fit_cbm", "fit_probabilistic_cbm",
           "fit_posthoc_cbm", "get_trained_cbm", "get_probabilistic_cbm", "get_posthoc_cbm", "concept_data",
           "intervention_curve", "correctable_errors", "error_by_uncertainty"]

#: Koh et al.'s three ways to train a concept bottleneck (module docstring).
CBM_MODES = ("independent", "sequential", "joint")

#: Training settings of the bottlenecks (full-batch Adam on the cached features; the classifier's
#: own profile is separate). ``concept_weight``: lambda of the joint loss; ``kl_weight``: beta of the
#: probabilistic CBM; ``samples``: its Monte-Carlo samples per step; ``probe_C``, ``head_C``: inverse
#: L2 / L1 strengths of the post-hoc CBM's probes and sparse head.
CBM_PROFILES = {
    "cpu": dict(epochs=400, lr=1e-2, weight_decay=1e-4, concept_weight=1.0, kl_weight=1e-3, samples=8,
                probe_C=0.1, head_C=0.05, residual_epochs=300),
    "paper": dict(epochs=1000, lr=5e-3, weight_decay=1e-4, concept_weight=1.0, kl_weight=1e-3, samples=16,
                  probe_C=0.1, head_C=0.05, residual_epochs=600),
}


# ----------------------------------------------------------------------------- features
def backbone_features(classifier: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The input of ``classifier``'s final linear layer for ``images``, ``[N, D]``, through one
    forward pass of the classifier with a hook on that layer (removed afterwards). Gradients flow
    (so gradient explanations run through a bottleneck built on it). The images are moved to the
    classifier's device; the features stay there."""
    from ..latent import classifier_head

    head = classifier_head(classifier)
    seen = []
    hook = head.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    try:
        classifier(images.to(model_device(classifier)))
    finally:
        hook.remove()
    if len(seen) != 1:
        raise RuntimeError(f"the classifier's head ran {len(seen)} times in one forward pass")
    return seen[0].flatten(1)


class _Standardise(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: torch.Tensor) -> "_Standardise":
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-6))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


# ----------------------------------------------------------------------------- bottlenecks
class _Bottleneck(nn.Module, abc.ABC):
    """Common part: ``concept_values(features)``, a linear ``head`` over them, interventions."""

    kind = "cbm"
    value_kind = "probability"

    @abc.abstractmethod
    def concept_values(self, features: torch.Tensor) -> torch.Tensor:
        """The bottleneck's concept values [N, K] for backbone ``features`` [N, D]."""

    def extra_logits(self, features: torch.Tensor) -> torch.Tensor | float:
        """What the logits get beyond the head (PCBM-h's residual); 0 for a pure bottleneck."""
        return 0.0

    def logits_from(self, features: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        return self.head(values) + self.extra_logits(features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.logits_from(features, self.concept_values(features))


class ConceptBottleneck(_Bottleneck):
    """Koh et al.'s bottleneck on features: standardise, concept logits ``W_c z + b_c``, sigmoid,
    linear head. ``mode`` records how it was trained (:data:`CBM_MODES`)."""

    def __init__(self, feat_dim: int, n_concepts: int, n_classes: int, mode: str = "joint"):
        super().__init__()
        check_choice("mode", mode, CBM_MODES)
        self.mode = mode
        self.norm = _Standardise(feat_dim)
        self.concept_layer = nn.Linear(feat_dim, n_concepts)
        self.head = nn.Linear(n_concepts, n_classes)

    def concept_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.concept_layer(self.norm(features))

    def concept_values(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.concept_logits(features))


#: Gauss-Hermite nodes and weights for E[g(z)], z ~ N(mu, sigma^2) = sum_i w_i g(mu + sqrt(2) sigma x_i) / sqrt(pi).
_GH_X, _GH_W = np.polynomial.hermite.hermgauss(20)


class ProbabilisticBottleneck(_Bottleneck):
    """Gaussian concept logits (module docstring): ``mu = W_mu z + b_mu``, ``log sigma^2 = W_s z + b_s``."""

    kind = "probabilistic-cbm"

    def __init__(self, feat_dim: int, n_concepts: int, n_classes: int):
        super().__init__()
        self.norm = _Standardise(feat_dim)
        self.mu = nn.Linear(feat_dim, n_concepts)
        self.log_var = nn.Linear(feat_dim, n_concepts)
        self.head = nn.Linear(n_concepts, n_classes)

    def moments(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, sigma)`` of each concept logit, ``[N, K]`` each."""
        z = self.norm(features)
        return self.mu(z), torch.exp(0.5 * self.log_var(z).clamp(-12.0, 6.0))

    def _expect(self, features: torch.Tensor, fn) -> torch.Tensor:
        mu, sigma = self.moments(features)
        x = torch.as_tensor(_GH_X, dtype=mu.dtype, device=mu.device)
        w = torch.as_tensor(_GH_W / np.sqrt(np.pi), dtype=mu.dtype, device=mu.device)
        z = mu[..., None] + np.sqrt(2.0) * sigma[..., None] * x
        return (fn(torch.sigmoid(z)) * w).sum(-1)

    def concept_values(self, features: torch.Tensor) -> torch.Tensor:
        """``E[sigmoid(z_j)]``: the concept probability, averaged over the logit's distribution."""
        return self._expect(features, lambda p: p)

    def uncertainty(self, features: torch.Tensor) -> dict:
        """Per concept ``[N, K]``: ``sigma`` (the logit's std), ``aleatoric`` ``E[p(1-p)]``,
        ``epistemic`` ``Var[p]`` and ``total`` = their sum = ``Var[c]`` of the predicted Bernoulli
        concept. (``sigma`` alone is no uncertainty: a logit far from 0 can carry a large sigma at no
        cost to the probability.)"""
        mean = self.concept_values(features)
        second = self._expect(features, lambda p: p * p)
        aleatoric = mean - second
        epistemic = (second - mean * mean).clamp_min(0)
        return {"sigma": self.moments(features)[1], "aleatoric": aleatoric, "epistemic": epistemic,
                "total": aleatoric + epistemic}


class PosthocBottleneck(_Bottleneck):
    """PCBM / PCBM-h on features (module docstring): unit probe vectors ``bank`` [K, D] in the
    standardised feature space, standardised projections as concept scores, a sparse linear head
    and (``hybrid``) a residual linear map of the features."""

    kind = "posthoc-cbm"
    value_kind = "standardised projection"

    def __init__(self, feat_dim: int, n_concepts: int, n_classes: int, hybrid: bool = True):
        super().__init__()
        self.norm = _Standardise(feat_dim)
        self.register_buffer("bank", torch.zeros(n_concepts, feat_dim))
        self.score_norm = _Standardise(n_concepts)
        self.head = nn.Linear(n_concepts, n_classes)
        self.residual = nn.Linear(feat_dim, n_classes)
        self.hybrid = bool(hybrid)

    def concept_values(self, features: torch.Tensor) -> torch.Tensor:
        return self.score_norm(self.norm(features) @ self.bank.T)

    def extra_logits(self, features: torch.Tensor):
        return self.residual(self.norm(features)) if self.hybrid else 0.0


# ----------------------------------------------------------------------------- the wrapper
class ConceptBottleneckModel(nn.Module):
    """A frozen classifier's features through a bottleneck: ``forward(images)`` gives the
    bottleneck's class logits (so :func:`medxai_lite.explain` explains its predicted class).

    ``concepts(images)``: the predicted concepts ``[N, K]`` (probabilities; standardised scores for a
    post-hoc CBM); ``predict(images, interventions)``: logits with concepts replaced;
    ``contributions(images, targets)``: ``W_y[target, j] * c_j`` per concept, which with the bias
    and the residual (PCBM-h) sums to the target's logit.
    """

    def __init__(self, classifier: nn.Module, bottleneck: _Bottleneck, concept_names: Sequence[str],
                 classes: Sequence[str]):
        super().__init__()
        if len(concept_names) != bottleneck.head.in_features:
            raise ValueError(f"concept_names must name the bottleneck's {bottleneck.head.in_features} concepts; "
                             f"got {len(concept_names)}")
        if len(classes) != bottleneck.head.out_features:
            raise ValueError(f"classes must name the head's {bottleneck.head.out_features} outputs; got {len(classes)}")
        self.classifier = classifier
        self.bottleneck = bottleneck
        self.concept_names = tuple(concept_names)
        self.classes = tuple(classes)

    @classmethod
    def untrained(cls, classifier: nn.Module, concept_names: Sequence[str], classes: Sequence[str] | int,
                  kind: str = "cbm", seed: int = 0) -> "ConceptBottleneckModel":
        """A bottleneck with seeded random weights on ``classifier`` (for tests and plumbing);
        ``kind``: ``"cbm"``, ``"probabilistic-cbm"`` or ``"posthoc-cbm"``. Returned in eval mode,
        on the classifier's device, like the trained ones, so :func:`~medxai_lite.explain` takes it."""
        from ..latent import classifier_head

        check_choice("kind", kind, ("cbm", "probabilistic-cbm", "posthoc-cbm"))
        classes = [str(c) for c in range(classes)] if isinstance(classes, int) else list(classes)
        dim = classifier_head(classifier).in_features
        gen = torch.Generator().manual_seed(int(seed))
        with torch.random.fork_rng():
            torch.manual_seed(int(seed))
            b = {"cbm": lambda: ConceptBottleneck(dim, len(concept_names), len(classes)),
                 "probabilistic-cbm": lambda: ProbabilisticBottleneck(dim, len(concept_names), len(classes)),
                 "posthoc-cbm": lambda: PosthocBottleneck(dim, len(concept_names), len(classes))}[kind]()
        if isinstance(b, PosthocBottleneck):
            b.bank.copy_(F.normalize(torch.randn(b.bank.shape, generator=gen), dim=1))
        return cls(classifier, b.to(model_device(classifier)), concept_names, classes).eval()

    @property
    def kind(self) -> str:
        return self.bottleneck.kind

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return backbone_features(self.classifier, images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(self.features(images))

    def concept_index(self, concept) -> int:
        """The position of ``concept`` (a name or an index)."""
        if isinstance(concept, str):
            if concept not in self.concept_names:
                raise ValueError(f"interventions: unknown concept {concept!r}; valid: {', '.join(self.concept_names)}")
            return self.concept_names.index(concept)
        if isinstance(concept, bool) or not isinstance(concept, (int, np.integer)) \
                or not 0 <= concept < len(self.concept_names):
            raise ValueError(f"interventions: a concept must be a name or an index in 0..{len(self.concept_names) - 1}; "
                             f"got {concept!r}")
        return int(concept)

    def _intervened(self, values: torch.Tensor, interventions: Mapping | None) -> torch.Tensor:
        if not interventions:
            return values
        if not isinstance(interventions, Mapping):
            raise ValueError(f"interventions must be a dict {{concept: value}}; got {interventions!r}")
        values = values.clone()
        for concept, value in interventions.items():
            j = self.concept_index(concept)
            v = torch.as_tensor(value, dtype=values.dtype, device=values.device)
            if v.ndim > 1 or (v.ndim == 1 and len(v) != len(values)) or not bool(torch.isfinite(v).all()):
                raise ValueError(f"interventions[{concept!r}] must be one finite number or one per image "
                                 f"({len(values)}); got {value!r}")
            values[:, j] = v
        return values

    @torch.no_grad()
    def concepts(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted concepts ``[N, K]`` (see :attr:`ConceptBottleneck.value_kind`)."""
        return self.bottleneck.concept_values(self.features(images))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, interventions: Mapping | None = None) -> torch.Tensor:
        """Class logits ``[N, C]`` with the concepts in ``interventions`` (``{name or index: value}``,
        a value or one per image) replaced before the head: test-time intervention."""
        f = self.features(images)
        b = self.bottleneck
        return b.logits_from(f, self._intervened(b.concept_values(f), interventions))

    @torch.no_grad()
    def contributions(self, images: torch.Tensor, targets) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W_y[t, j] * c_j [N, K], rest [N])``: each concept's share of the target logit and what
        the head's bias and the residual add, so that ``shares.sum(1) + rest`` is the logit."""
        f = self.features(images)
        b = self.bottleneck
        values = b.concept_values(f)
        t = torch.as_tensor(targets, dtype=torch.long, device=values.device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(len(values))
        shares = b.head.weight[t] * values
        extra = b.extra_logits(f)
        rest = b.head.bias[t] + (extra[torch.arange(len(t)), t] if torch.is_tensor(extra) else 0.0)
        return shares, rest


# ----------------------------------------------------------------------------- fitting
def _check_training_data(features, concepts, labels, num_classes):
    f = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    c = torch.as_tensor(np.asarray(concepts), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"features must have shape [N, D] with N >= 2; got {list(f.shape)}")
    if c.ndim != 2 or len(c) != len(f):
        raise ValueError(f"concepts must have shape [N, K] with N = {len(f)}; got {list(c.shape)}")
    if not bool(((c >= 0) & (c <= 1)).all()):
        raise ValueError("concepts must lie in [0, 1]")
    if y.shape != (len(f),):
        raise ValueError(f"labels must have shape [{len(f)}]; got {list(y.shape)}")
    if not bool(torch.isfinite(f).all()):
        raise ValueError("features contain NaN or infinite values")
    num_classes = int(y.max()) + 1 if num_classes is None else check_positive_int("num_classes", num_classes, 2)
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels must be class indices in 0..{num_classes - 1}")
    return f, c, y, num_classes


def _adam(params, lr, weight_decay, steps, loss_fn) -> list:
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    return history


def _settings(profile: str, overrides: dict) -> dict:
    return profile_settings(CBM_PROFILES, profile, overrides, "bottleneck setting")


def fit_cbm(features, concepts, labels, *, mode: str = "joint", num_classes: int | None = None, seed: int = 0,
            **settings) -> tuple[ConceptBottleneck, list]:
    """Fit a :class:`ConceptBottleneck` on features ``[N, D]``, concepts ``[N, K]`` in [0, 1] and labels
    ``[N]``, trained as ``mode`` says (module docstring); returns ``(bottleneck, loss history)``.
    ``settings`` default to :data:`CBM_PROFILES` ``["cpu"]``."""
    check_choice("mode", mode, CBM_MODES)
    s = _settings("cpu", settings)
    f, c, y, num_classes = _check_training_data(features, concepts, labels, num_classes)
    with torch.random.fork_rng():
        torch.manual_seed(int(seed))
        b = ConceptBottleneck(f.shape[1], c.shape[1], num_classes, mode)
    b.norm.fit(f)
    z = b.norm(f)
    steps, lr, wd = int(s["epochs"]), float(s["lr"]), float(s["weight_decay"])

    def concept_loss():
        return F.binary_cross_entropy_with_logits(b.concept_layer(z), c)

    b.train()
    if mode == "joint":
        lam = float(s["concept_weight"])
        history = _adam(b.parameters(), lr, wd, steps, lambda: F.cross_entropy(
            b.head(torch.sigmoid(b.concept_layer(z))), y) + lam * concept_loss())
    else:
        history = _adam(b.concept_layer.parameters(), lr, wd, steps, concept_loss)
        inputs = c if mode == "independent" else torch.sigmoid(b.concept_layer(z)).detach()
        history += _adam(b.head.parameters(), lr, wd, steps, lambda: F.cross_entropy(b.head(inputs), y))
    return b.eval(), history


def fit_probabilistic_cbm(features, concepts, labels, *, num_classes: int | None = None, seed: int = 0,
                          **settings) -> tuple[ProbabilisticBottleneck, list]:
    """Fit a :class:`ProbabilisticBottleneck` (module docstring): per step, ``samples`` reparameterised
    draws of every concept logit; loss ``CE(head(sigmoid(z)), y) + lambda * BCE(z, c) + beta * KL``."""
    s = _settings("cpu", settings)
    f, c, y, num_classes = _check_training_data(features, concepts, labels, num_classes)
    with torch.random.fork_rng():
        torch.manual_seed(int(seed))
        b = ProbabilisticBottleneck(f.shape[1], c.shape[1], num_classes)
    b.norm.fit(f)
    gen = torch.Generator().manual_seed(int(seed))
    n_samples, lam, beta = check_positive_int("samples", s["samples"]), float(s["concept_weight"]), float(s["kl_weight"])

    def loss():
        mu, sigma = b.moments(f)
        eps = torch.randn((n_samples, *mu.shape), generator=gen)
        logits = mu + sigma * eps                                              # [S, N, K]
        concept = F.binary_cross_entropy_with_logits(logits, c.expand_as(logits))
        label = F.cross_entropy(b.head(torch.sigmoid(logits)).reshape(-1, num_classes), y.repeat(n_samples))
        kl = 0.5 * (mu ** 2 + sigma ** 2 - 2 * torch.log(sigma) - 1).mean()
        return label + lam * concept + beta * kl

    b.train()
    history = _adam(b.parameters(), float(s["lr"]), float(s["weight_decay"]), int(s["epochs"]), loss)
    return b.eval(), history


def fit_posthoc_cbm(features, concepts, labels, *, num_classes: int | None = None, seed: int = 0,
                    **settings) -> tuple[PosthocBottleneck, dict]:
    """Fit a :class:`PosthocBottleneck` (module docstring): scikit-learn probes (L2 logistic
    regression, ``probe_C``), a sparse L1 logistic head (``head_C``, saga) on the standardised
    projections, then the residual (Adam, ``residual_epochs``) with the head fixed. Returns
    ``(bottleneck, info)`` with the probes' training accuracy and the head's non-zero weights."""
    from sklearn.linear_model import LogisticRegression

    s = _settings("cpu", settings)
    f, c, y, num_classes = _check_training_data(features, concepts, labels, num_classes)
    b = PosthocBottleneck(f.shape[1], c.shape[1], num_classes)
    b.norm.fit(f)
    z = b.norm(f)
    zn = z.numpy()
    probe_acc = []
    for j in range(c.shape[1]):
        target = (c[:, j] > 0.5).numpy()
        if target.all() or not target.any():
            warnings.warn(f"concept {j} is constant in the training data: its probe vector is zero", RuntimeWarning,
                          stacklevel=2)
            probe_acc.append(float("nan"))
            continue
        probe = LogisticRegression(C=float(s["probe_C"]), max_iter=2000).fit(zn, target)
        w = torch.from_numpy(probe.coef_[0].astype(np.float32))
        b.bank[j] = w / w.norm().clamp_min(1e-12)
        probe_acc.append(float(probe.score(zn, target)))
    scores = z @ b.bank.T
    b.score_norm.fit(scores)
    sn = b.score_norm(scores).numpy()
    head = LogisticRegression(l1_ratio=1.0, solver="saga", C=float(s["head_C"]), max_iter=5000,
                              random_state=int(seed)).fit(sn, y.numpy())
    if len(head.classes_) != num_classes:
        raise ValueError(f"labels must hold every one of the {num_classes} classes; got {list(head.classes_)}")
    coef, bias = torch.from_numpy(head.coef_.astype(np.float32)), torch.from_numpy(head.intercept_.astype(np.float32))
    if coef.shape[0] == 1:            # two classes: symmetric logits give the same softmax
        coef, bias = torch.cat([-coef / 2, coef / 2]), torch.cat([-bias / 2, bias / 2])
    with torch.no_grad():
        b.head.weight.copy_(coef)
        b.head.bias.copy_(bias)
        b.residual.weight.zero_()
        b.residual.bias.zero_()
    fixed = b.head(b.score_norm(scores)).detach()
    b.train()
    history = _adam(b.residual.parameters(), float(s["lr"]), float(s["weight_decay"]), int(s["residual_epochs"]),
                    lambda: F.cross_entropy(fixed + b.residual(z), y))
    return b.eval(), {"probe_accuracy": probe_acc, "nonzero_weights": int((b.head.weight.abs() > 0).sum()),
                      "history": history}


# ----------------------------------------------------------------------------- data, evaluation
def concept_data(classifier: nn.Module, dataset, *, n: int | None = None, batch_size: int = 64):
    """Penultimate features, concept labels and class labels of ``dataset`` under ``classifier``
    (a :class:`~medxai_lite.latent.LatentFeatures`; no images kept): what the bottlenecks train on."""
    from ..latent import penultimate_features

    if getattr(dataset, "concepts", None) is None:
        raise ValueError(f"dataset must carry concept labels (the phantoms do); {dataset!r} has none")
    return penultimate_features(classifier, dataset, n=n, batch_size=batch_size, keep_images=False)


@torch.no_grad()
def _evaluate(b: _Bottleneck, data) -> dict:
    from sklearn.metrics import roc_auc_score

    dev = model_device(b)
    f = torch.from_numpy(data.features).to(dev)
    values = b.concept_values(f)
    y = torch.from_numpy(data.labels).to(dev)
    out = {"label_accuracy": float((b(f).argmax(1) == y).float().mean()),
           "classifier_accuracy": float((data.logits.argmax(1) == data.labels).mean())}
    if isinstance(b, PosthocBottleneck):
        out["head_accuracy"] = float((b.head(values).argmax(1) == y).float().mean())
    values = values.cpu()
    truth = data.concepts > 0.5
    aucs, accs = [], []
    for j in range(truth.shape[1]):
        aucs.append(float(roc_auc_score(truth[:, j], values[:, j].numpy())) if 0 < truth[:, j].sum() < len(truth)
                    else float("nan"))
        if b.value_kind == "probability":
            accs.append(float(((values[:, j] > 0.5).numpy() == truth[:, j]).mean()))
    out["concept_auc"] = aucs
    if accs:
        out["concept_accuracy"] = accs
        out["concept_mae"] = [float(v) for v in (values - torch.from_numpy(data.concepts)).abs().mean(0)]
    return out


def _check_probability_cbm(model, data) -> None:
    """A ``ValueError`` unless ``model`` is a bottleneck of concept probabilities and ``data``
    (:func:`concept_data`) carries one true value per concept of it."""
    if not isinstance(model, ConceptBottleneckModel) or model.bottleneck.value_kind != "probability":
        raise ValueError("model must be a ConceptBottleneckModel whose concepts are probabilities (a CBM or a "
                         "probabilistic CBM)")
    if data.concepts is None or data.concepts.shape[1] != len(model.concept_names):
        raise ValueError(f"data must carry the model's {len(model.concept_names)} concept labels")


def intervention_curve(model: ConceptBottleneckModel, data, *, order: str = "random", seed: int = 0):
    """Accuracy as ``k = 0..K`` concepts per image are replaced by their true values (Koh et al.'s
    test-time intervention, Fig. 4), on ``data`` from :func:`concept_data`. ``order``: ``"random"``
    (a seeded random order per image) or ``"uncertain"`` (the concepts whose probability is closest
    to 0.5 first). Probability bottlenecks only (a post-hoc CBM's scores have no true value).
    Returns a pandas DataFrame with ``k`` and ``accuracy``."""
    import pandas as pd

    check_choice("order", order, ("random", "uncertain"))
    _check_probability_cbm(model, data)
    b = model.bottleneck
    dev = model_device(b)
    f = torch.from_numpy(data.features).to(dev)
    truth = torch.from_numpy(data.concepts).to(dev)
    labels = torch.from_numpy(data.labels).to(dev)
    with torch.no_grad():
        values = b.concept_values(f)
        if order == "random":
            rng = np.random.default_rng(seed)
            rank = torch.from_numpy(np.argsort(rng.random(values.shape), axis=1).argsort(1)).to(dev)
        else:
            rank = (values - 0.5).abs().argsort(1).argsort(1)
        rows = []
        for k in range(values.shape[1] + 1):
            v = torch.where(rank < k, truth, values)
            acc = float((b.logits_from(f, v).argmax(1) == labels).float().mean())
            rows.append({"k": k, "accuracy": acc})
    return pd.DataFrame(rows)


def correctable_errors(model: ConceptBottleneckModel, data):
    """The wrong predictions that one corrected concept puts right (test-time intervention, one at a time).

    For every image of ``data`` (:func:`concept_data`) whose class the bottleneck gets wrong, each
    concept ``j`` in turn is replaced by its true value (``c_j <- c*_j``, the others left as
    predicted), and the pair ``(image, j)`` is kept when the corrected concepts give the true class.
    Probability bottlenecks only (a CBM or a probabilistic CBM). Returns a pandas DataFrame with
    ``position`` (row in ``data``), ``concept``, ``predicted`` and ``true`` concept values, the class
    ``before`` and ``after`` and the true ``label``, largest concept error first.
    """
    import pandas as pd

    _check_probability_cbm(model, data)
    b = model.bottleneck
    dev = model_device(b)
    f = torch.from_numpy(np.asarray(data.features, dtype=np.float32)).to(dev)
    truth = torch.from_numpy(np.asarray(data.concepts, dtype=np.float32)).to(dev)
    labels = np.asarray(data.labels)
    rows = []
    with torch.no_grad():
        values = b.concept_values(f)
        before = b.logits_from(f, values).argmax(1).cpu().numpy()
        for j, name in enumerate(model.concept_names):
            fixed = values.clone()
            fixed[:, j] = truth[:, j]
            after = b.logits_from(f, fixed).argmax(1).cpu().numpy()
            for i in np.flatnonzero((before != labels) & (after == labels)):
                rows.append({"position": int(i), "concept": name, "predicted": float(values[i, j]),
                             "true": float(truth[i, j]), "before": model.classes[before[i]],
                             "after": model.classes[after[i]], "label": model.classes[labels[i]]})
    frame = pd.DataFrame(rows, columns=["position", "concept", "predicted", "true", "before", "after", "label"])
    order = (frame["predicted"] - frame["true"]).abs().sort_values(ascending=False, kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def error_by_uncertainty(uncertainty, errors, *, n_bins: int = 5):
    """How often a concept prediction is wrong, by how uncertain the model said it was.

    ``uncertainty`` float and ``errors`` bool, both ``[N, K]`` (or flat): each (image, concept)
    prediction's uncertainty (e.g. the probabilistic CBM's ``Var[c_j]``) and whether it was wrong.
    The predictions are sorted by uncertainty and cut into ``n_bins`` groups of (nearly) equal size;
    returns a pandas DataFrame with one row per group (``uncertainty``: its mean, ``error_rate``,
    ``n``), and in ``.attrs["auroc"]`` the area under the ROC curve of the uncertainty as a detector
    of wrong predictions (scikit-learn; NaN when all or none are wrong): 1 when every wrong
    prediction is more uncertain than every right one, 0.5 for an uncertainty that says nothing.
    """
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    u = np.asarray(uncertainty, dtype=np.float64).ravel()
    e = np.asarray(errors).ravel()
    if u.shape != e.shape or len(u) == 0:
        raise ValueError(f"uncertainty and errors must have the same non-empty shape; got "
                         f"{np.shape(uncertainty)} and {np.shape(errors)}")
    if not np.isfinite(u).all():
        raise ValueError("uncertainty contains NaN or infinite values")
    if e.dtype != bool and not np.isin(e, (0, 1)).all():
        raise ValueError("errors must be booleans (True: the prediction was wrong)")
    e = e.astype(bool)
    n_bins = check_positive_int("n_bins", n_bins)
    if n_bins > len(u):
        raise ValueError(f"n_bins must be at most the number of predictions ({len(u)}); got {n_bins}")
    order = np.argsort(u, kind="stable")
    groups = np.array_split(order, n_bins)
    frame = pd.DataFrame({"uncertainty": [u[g].mean() for g in groups], "error_rate": [e[g].mean() for g in groups],
                          "n": [len(g) for g in groups]})
    frame.index.name = "bin"
    frame.attrs["auroc"] = float(roc_auc_score(e, u)) if 0 < e.sum() < len(e) else float("nan")
    return frame


# ----------------------------------------------------------------------------- cache
@dataclass
class ConceptModelReport:
    """What a bottleneck's training produced: settings, metrics on the classifier's test split,
    the loss (every 10th step), seconds and cache keys."""
    kind: str
    dataset: str
    mode: str
    settings: dict
    concept_names: list
    classes: list
    feat_dim: int
    metrics: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    seconds: float = 0.0
    cache_key: str = ""
    classifier_key: str = ""


_DATA: dict = {}


def _training_data(classifier: nn.Module, dataset: str, seed: int):
    """``(train, test)`` :func:`concept_data` of the classifier's own training and test splits, once
    per classifier in this process."""
    from ..data import load_dataset

    key = (classifier.report.cache_key, dataset, seed)
    if key not in _DATA:
        s = classifier.report.settings
        knobs = {k: s[k] for k in ("difficulty", "shortcut", "class_balance") if k in s}
        common = dict(image_size=s["image_size"], seed=seed, **knobs)
        train = load_dataset(dataset, "train", n=s["n_train"], **common)
        test = load_dataset(dataset, "test", n=s["n_test"], **common)
        _DATA[key] = (concept_data(classifier, train), concept_data(classifier, test))
    return _DATA[key]


def _key(blob: dict) -> str:
    from .. import __version__

    text = json.dumps({**blob, "medxai_lite": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _classifier(dataset: str, classifier, profile: str, seed: int, progress: bool):
    from ..models.train import get_trained_model

    if classifier is None:
        classifier = get_trained_model(dataset, profile=profile, seed=seed, progress=progress)
    if not hasattr(classifier, "report"):
        raise ValueError("classifier must be a trained model from get_trained_model (it carries .report, whose "
                         "settings name its training data)")
    return classifier


def _get(kind: str, dataset: str, mode: str, classifier, seed: int, settings: dict, build, fit,
         retrain: bool) -> ConceptBottleneckModel:
    """Load bottleneck ``kind`` from the cache, or ``fit(train, test)`` it now and cache weights + JSON."""
    from ..models.train import save_cached_model

    classifier_key = classifier.report.cache_key
    key = _key({"kind": kind, "dataset": dataset, "mode": mode, "classifier": classifier_key, "seed": seed,
                "settings": settings})
    stem = cache_dir("models") / f"{dataset}-{kind}-{key}"
    weights, meta = stem.with_suffix(".pt"), stem.with_suffix(".json")
    if weights.exists() and meta.exists() and not retrain:
        report = ConceptModelReport(**json.loads(meta.read_text()))
        bottleneck = build(report)
        bottleneck.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    else:
        t0 = time.perf_counter()
        train, test = _training_data(classifier, dataset, seed)
        bottleneck, history, info = fit(train)
        metrics = {**_evaluate(bottleneck, test), **info}
        report = ConceptModelReport(kind=kind, dataset=dataset, mode=mode, settings=settings,
                                    concept_names=list(train.concept_names), classes=list(train.classes),
                                    feat_dim=int(train.features.shape[1]), metrics=metrics, history=history[::10],
                                    seconds=time.perf_counter() - t0, cache_key=key, classifier_key=classifier_key)
        save_cached_model(bottleneck, report, weights, meta)
    dev = model_device(classifier)
    model = ConceptBottleneckModel(classifier, bottleneck.to(dev).eval(), report.concept_names, report.classes).eval()
    model.report = report
    return model


def get_trained_cbm(dataset: str, mode: str = "joint", *, profile: str = "cpu", seed: int = 0,
                    classifier: nn.Module | None = None, retrain: bool = False, progress: bool = False,
                    **overrides) -> ConceptBottleneckModel:
    """Koh et al.'s concept bottleneck of ``dataset``, trained ``mode`` (:data:`CBM_MODES`) on the
    frozen features of the book's default classifier (or ``classifier``), from the cache or trained
    now on that classifier's training split. ``.report`` (a :class:`ConceptModelReport`) holds the
    label accuracy, the per-concept accuracy and AUC on the classifier's test split, and the
    classifier's own accuracy there.

    Example
    -------
    >>> cbm = get_trained_cbm("phantom-brain-mri", "sequential")                     # doctest: +SKIP
    >>> cbm.predict(images, interventions={"ring enhancement": 0.0})                 # doctest: +SKIP
    """
    check_choice("mode", mode, CBM_MODES)
    classifier = _classifier(dataset, classifier, profile, seed, progress)
    s = _settings(profile, overrides)
    fit_keys = ("epochs", "lr", "weight_decay", "concept_weight")

    def build(report):
        return ConceptBottleneck(report.feat_dim, len(report.concept_names), len(report.classes), mode)

    def fit(train):
        b, history = fit_cbm(train.features, train.concepts, train.labels, mode=mode, num_classes=len(train.classes),
                             seed=seed, **{k: s[k] for k in fit_keys})
        return b, history, {}

    return _get("cbm", dataset, mode, classifier, seed, {k: s[k] for k in fit_keys}, build, fit, retrain)


def get_probabilistic_cbm(dataset: str, *, profile: str = "cpu", seed: int = 0, classifier: nn.Module | None = None,
                          retrain: bool = False, progress: bool = False, **overrides) -> ConceptBottleneckModel:
    """The probabilistic CBM (:class:`ProbabilisticBottleneck`) of ``dataset`` on the default
    classifier's frozen features, cached like :func:`get_trained_cbm`; ``model.bottleneck.uncertainty``
    gives each concept's uncertainty."""
    classifier = _classifier(dataset, classifier, profile, seed, progress)
    s = _settings(profile, overrides)
    fit_keys = ("epochs", "lr", "weight_decay", "concept_weight", "kl_weight", "samples")

    def build(report):
        return ProbabilisticBottleneck(report.feat_dim, len(report.concept_names), len(report.classes))

    def fit(train):
        b, history = fit_probabilistic_cbm(train.features, train.concepts, train.labels,
                                           num_classes=len(train.classes), seed=seed, **{k: s[k] for k in fit_keys})
        return b, history, {}

    return _get("probabilistic-cbm", dataset, "joint", classifier, seed, {k: s[k] for k in fit_keys}, build, fit,
                retrain)


def get_posthoc_cbm(dataset: str, *, hybrid: bool = True, profile: str = "cpu", seed: int = 0,
                    classifier: nn.Module | None = None, retrain: bool = False, progress: bool = False,
                    **overrides) -> ConceptBottleneckModel:
    """The post-hoc CBM of ``dataset`` on the default classifier's frozen features, cached like
    :func:`get_trained_cbm`; ``hybrid=True`` predicts with the residual (PCBM-h), ``False`` with the
    sparse head alone (PCBM; the same weights). ``report.metrics``: ``head_accuracy`` (PCBM),
    ``label_accuracy`` (PCBM-h), ``probe_accuracy``, ``nonzero_weights``."""
    classifier = _classifier(dataset, classifier, profile, seed, progress)
    s = _settings(profile, overrides)
    fit_keys = ("lr", "weight_decay", "probe_C", "head_C", "residual_epochs")

    def build(report):
        return PosthocBottleneck(report.feat_dim, len(report.concept_names), len(report.classes))

    def fit(train):
        b, info = fit_posthoc_cbm(train.features, train.concepts, train.labels, num_classes=len(train.classes),
                                  seed=seed, **{k: s[k] for k in fit_keys})
        history = info.pop("history")
        return b, history, info

    model = _get("posthoc-cbm", dataset, "posthoc", classifier, seed, {k: s[k] for k in fit_keys}, build, fit,
                 retrain)
    model.bottleneck.hybrid = bool(hybrid)
    return model
