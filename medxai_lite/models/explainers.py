r"""Trained parts of the example-based family: the L2X explainer, and classifiers trained on
training sets with planted mislabelled images (the influence experiments).

L2X (Chen et al. 2018, "Learning to Explain: An Information-Theoretic Perspective on Model
Interpretation", ICML) trains a small *explainer* network :math:`E_\theta` that, for each image,
scores :math:`d` patches (an ``patch`` x ``patch`` grid) and keeps ``k`` of them. The subset
:math:`S` is chosen to carry as much information as possible about the classifier's output: the
paper's variational bound

.. math:: \max_{\theta, \phi}\; \mathbb E_{x, \zeta}\Big[\sum_y P_m(y \mid x)\,
          \log q_\phi\big(y \mid V(\theta, \zeta) \odot x\big)\Big]

with :math:`P_m` the classifier's class probabilities and :math:`q_\phi` a second network, the
*approximator*, that sees only the kept patches. Keeping ``k`` of ``d`` patches is made
differentiable with the paper's Gumbel-softmax relaxation of subset sampling: with
:math:`p = \mathrm{softmax}(E_\theta(x))` and ``k`` independent Gumbel draws
:math:`G^j_i = -\log(-\log u^j_i)`, :math:`u^j_i \sim U(0, 1)`,

.. math:: C^j_i = \frac{\exp\{(\log p_i + G^j_i) / \tau\}}{\sum_l \exp\{(\log p_l + G^j_l)/\tau\}},
          \qquad V_i = \max_{j = 1..k} C^j_i ,

(:func:`relaxed_subset`); at explanation time the ``k`` patches of largest :math:`p_i` are kept.
Unkept pixels take a reference image :math:`b` (:func:`medxai_lite.baselines.make_baseline`;
the default ``"zero"`` is the paper's :math:`V \odot x` in the model's normalised input space,
i.e. the dataset's mean colour): :math:`\tilde x = V \odot x + (1 - V) \odot b`.
``approximator="learned"`` is the paper's :math:`q_\phi` (a small CNN trained jointly);
``approximator="classifier"`` fixes :math:`q = P_m`, the classifier itself on :math:`\tilde x`,
which asks which patches *this* classifier needs (at the cost of a backward pass through it per
step, and of showing it images with patches replaced by :math:`b`).

:func:`get_trained_l2x` trains once per (classifier, ``k``, ``patch``, settings) and caches the
weights beside the classifier, keyed by its ``report.cache_key`` (as the text models are).

For the influence experiments, :func:`plant_mislabels` relabels a few training images of one class
as another, :func:`train_classifier` fits a :class:`~medxai_lite.models.SmallCNN` on any labels,
and :func:`get_mislabelled_model` does both on a phantom and caches the result with the planted
indices in its ``report``.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._utils import cache_dir, check_choice, check_eval_model, check_positive_int, model_device

__all__ = ["L2X", "L2XReport", "APPROXIMATORS", "L2X_SETTINGS", "relaxed_subset", "train_l2x", "get_trained_l2x",
           "training_probabilities", "uninformed_l2x_loss",
           "plant_mislabels", "train_classifier", "MislabelReport", "get_mislabelled_model", "as_images"]

#: What plays :math:`q` in L2X's bound: the paper's jointly trained network, or the classifier itself.
APPROXIMATORS = ("learned", "classifier")
#: Training settings of :func:`train_l2x` (the defaults of :func:`get_trained_l2x`).
L2X_SETTINGS = dict(epochs=20, batch_size=32, lr=5e-3, tau=0.5, width=16, baseline="zero", approximator="learned")


# ----------------------------------------------------------------------------- data helpers
def as_images(data, name: str = "train", batch_size: int = 256) -> torch.Tensor:
    """Normalised images ``[N, 3, H, W]`` (CPU float32) from a tensor or a dataset of this package."""
    if isinstance(data, torch.Tensor):
        if data.ndim != 4 or not data.is_floating_point():
            raise ValueError(f"{name} must be a float image tensor [N, 3, H, W] or a dataset; got shape "
                             f"{list(data.shape)} ({data.dtype})")
        return data.detach().float().cpu()
    if hasattr(data, "batch") and hasattr(data, "classes"):
        if len(data) == 0:
            raise ValueError(f"{name} holds no images")
        return torch.cat([data.batch(range(s, min(s + batch_size, len(data))))["image"]
                          for s in range(0, len(data), batch_size)])
    raise ValueError(f"{name} must be a dataset of medxai_lite.data or an image tensor [N, 3, H, W]; "
                     f"got {type(data).__name__}")


def _key(blob: dict) -> str:
    from .. import __version__

    return hashlib.sha256(json.dumps({**blob, "medxai_lite": __version__}, sort_keys=True, default=str)
                          .encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- L2X
def relaxed_subset(logits: torch.Tensor, k: int, tau: float, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Chen et al. (2018)'s continuous relaxation of sampling ``k`` of ``d`` items: ``[N, d]`` in
    [0, 1], :math:`V_i = \max_j \mathrm{softmax}_i((\log p + G^j)/\tau)` over ``k`` Gumbel draws
    :math:`G^j` (module docstring). As :math:`\tau \to 0` it tends to a ``k``-hot sample."""
    logp = logits.log_softmax(-1)
    u = torch.rand((logits.shape[0], int(k), logits.shape[1]), generator=generator, device=logits.device,
                   dtype=logits.dtype).clamp_(1e-10, 1 - 1e-10)
    gumbel = -torch.log(-torch.log(u))
    return ((logp[:, None] + gumbel) / tau).softmax(-1).amax(1)


class _Selector(nn.Module):
    """The explainer :math:`E_\\theta`: two 3x3 convolutions on the image and two coordinate
    channels (CoordConv, Liu et al. 2018: where a patch is can matter), pooled to the patch grid,
    each cell joined with the image's global mean feature, then a 1x1 score per patch."""

    def __init__(self, patch: int, width: int = 16, channels: int = 3):
        super().__init__()
        self.local = nn.Sequential(nn.Conv2d(channels + 2, width, 3, padding=1), nn.ReLU(),
                                   nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.AvgPool2d(patch))
        self.score = nn.Sequential(nn.Conv2d(2 * width, width, 1), nn.ReLU(), nn.Conv2d(width, 1, 1))

    def forward(self, x):
        n, _, rows, cols = x.shape
        ys = torch.linspace(-1, 1, rows, device=x.device, dtype=x.dtype).view(1, 1, rows, 1).expand(n, 1, rows, cols)
        xs = torch.linspace(-1, 1, cols, device=x.device, dtype=x.dtype).view(1, 1, 1, cols).expand(n, 1, rows, cols)
        h = self.local(torch.cat([x, ys, xs], 1))
        g = h.mean((2, 3), keepdim=True).expand_as(h)
        return self.score(torch.cat([h, g], 1)).flatten(1)


class _Approximator(nn.Module):
    """The paper's variational family :math:`q_\\phi`: a small CNN on the masked image."""

    def __init__(self, num_classes: int, width: int = 16, channels: int = 3):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
                                 nn.Flatten(), nn.Linear(2 * width, num_classes))

    def forward(self, x):
        return self.net(x)


class L2X(nn.Module):
    """A trained L2X explainer: ``select(images)`` gives each image's patch probabilities and its
    ``k`` kept patches. ``approximator`` is the jointly trained :math:`q_\\phi` (``None`` when the
    classifier itself played :math:`q`)."""

    def __init__(self, k: int, patch: int, num_classes: int, *, width: int = 16, approximator: str = "learned",
                 baseline="zero"):
        super().__init__()
        check_choice("approximator", approximator, APPROXIMATORS)
        self.k, self.patch, self.baseline, self.kind = int(k), int(patch), baseline, approximator
        self.selector = _Selector(self.patch, width)
        self.approximator = _Approximator(num_classes, width) if approximator == "learned" else None

    def grid(self, size: tuple[int, int]) -> tuple[int, int]:
        h, w = size
        if h % self.patch or w % self.patch:
            raise ValueError(f"patch must divide the image size; got patch={self.patch} for {h} x {w} images")
        if (h // self.patch) * (w // self.patch) < self.k:
            raise ValueError(f"k must be at most the number of patches ({(h // self.patch) * (w // self.patch)}); "
                             f"got k={self.k}")
        return h // self.patch, w // self.patch

    def upsample(self, cells: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Per-patch values ``[N, d]`` -> per-pixel maps ``[N, 1, H, W]`` (each patch constant)."""
        gh, gw = self.grid(size)
        return F.interpolate(cells.reshape(-1, 1, gh, gw), scale_factor=self.patch, mode="nearest")

    def masked(self, images: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """:math:`V \\odot x + (1 - V) \\odot b` for per-patch weights ``cells`` [N, d]."""
        from ..baselines import make_baseline

        keep = self.upsample(cells, tuple(images.shape[-2:])).to(images)
        return keep * images + (1 - keep) * make_baseline(images, self.baseline)

    @torch.no_grad()
    def select(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(probabilities [N, d], kept [N, d] 0/1)``: the explainer's softmax over patches and
        its ``k`` most probable patches (the deterministic choice at explanation time)."""
        self.grid(tuple(images.shape[-2:]))
        was = self.training
        self.eval()
        try:
            logits = self.selector(images)
        finally:
            self.train(was)
        probs = logits.softmax(-1)
        kept = torch.zeros_like(probs).scatter_(1, logits.topk(self.k, dim=1).indices, 1.0)
        return probs, kept


@dataclass
class L2XReport:
    """What :func:`train_l2x` did: settings, loss per epoch, seconds, cache keys."""
    k: int
    patch: int
    num_classes: int
    settings: dict
    history: list = field(default_factory=list)
    seconds: float = 0.0
    cache_key: str = ""
    classifier_key: str = ""
    n_train: int = 0


def train_l2x(classifier: nn.Module, train, *, k: int = 4, patch: int = 8, epochs: int = 20, batch_size: int = 32,
              lr: float = 5e-3, tau: float = 0.5, width: int = 16, baseline="zero", approximator: str = "learned",
              seed: int = 0, progress: bool = False, targets=None) -> L2X:
    """Train an :class:`L2X` explainer of ``classifier`` (eval mode, left unchanged) on ``train``
    (a dataset or a normalised image tensor). Returns it in eval mode with ``.report``
    (an :class:`L2XReport`). Deterministic for a seed (its own generators: the global random
    state is not touched). ``targets``: the classifier's class probabilities :math:`P_m(y|x)` on
    ``train`` (float [N, C], rows summing to 1) when they are known already; ``None``: one
    forward pass of the classifier over ``train`` computes them."""
    check_eval_model(classifier, "L2X training")
    k, patch = check_positive_int("k", k), check_positive_int("patch", patch)
    epochs, batch_size, width = (check_positive_int("epochs", epochs), check_positive_int("batch_size", batch_size),
                                 check_positive_int("width", width))
    check_choice("approximator", approximator, APPROXIMATORS)
    if not (isinstance(tau, (int, float)) and tau > 0):
        raise ValueError(f"tau must be a number > 0; got {tau!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a number > 0; got {lr!r}")
    images = as_images(train)
    dev = model_device(classifier)
    if targets is None:
        with torch.no_grad():
            target = torch.cat([classifier(x.to(dev)).float().softmax(1).cpu() for x in images.split(256)])
    else:
        target = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
        if target.ndim != 2 or len(target) != len(images) or not torch.isfinite(target).all() \
                or (target < 0).any() or not torch.allclose(target.sum(1), torch.ones(len(target)), atol=1e-4):
            raise ValueError(f"targets must be class probabilities [N={len(images)}, C] with rows summing to 1; got "
                             f"shape {list(target.shape)}")
    num_classes = target.shape[1]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        explainer = L2X(k, patch, num_classes, width=width, approximator=approximator, baseline=baseline)
    explainer.grid(tuple(images.shape[-2:]))
    explainer.to(dev).train()
    opt = torch.optim.Adam(explainer.parameters(), lr=lr)
    gen = torch.Generator(device=dev).manual_seed(seed)
    order_gen = torch.Generator().manual_seed(seed)
    frozen = [(p, p.requires_grad) for p in classifier.parameters()]
    history, t0 = [], time.perf_counter()
    try:
        for p, _ in frozen:
            p.requires_grad_(False)
        for epoch in range(epochs):
            total = 0.0
            for idx in torch.randperm(len(images), generator=order_gen).split(batch_size):
                x, y = images[idx].to(dev), target[idx].to(dev)
                v = relaxed_subset(explainer.selector(x), k, tau, gen)
                x_s = explainer.masked(x, v)
                q = explainer.approximator(x_s) if explainer.approximator is not None else classifier(x_s)
                loss = -(y * q.float().log_softmax(1)).sum(1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            history.append(total / len(images))
            if progress:
                print(f"L2X epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f}")
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
    explainer.eval()
    explainer.report = L2XReport(k=k, patch=patch, num_classes=num_classes, n_train=len(images),
                                 settings=dict(epochs=epochs, batch_size=batch_size, lr=lr, tau=tau, width=width,
                                               baseline=baseline if isinstance(baseline, str) else "tensor",
                                               approximator=approximator, seed=seed),
                                 history=history, seconds=time.perf_counter() - t0)
    return explainer


def get_trained_l2x(classifier: nn.Module, *, k: int = 4, patch: int = 8, seed: int = 0, retrain: bool = False,
                    progress: bool = False, **settings) -> L2X:
    """The L2X explainer of a trained classifier (one of :func:`~medxai_lite.models.get_trained_model`,
    which carries ``report``), trained once on the classifier's own training split and cached beside
    it, keyed by the classifier's ``report.cache_key``, ``k``, ``patch``, ``seed`` and ``settings``
    (:data:`L2X_SETTINGS`). A later call loads it in a second."""
    from ..explain.examples import training_split

    unknown = set(settings) - set(L2X_SETTINGS)
    if unknown:
        raise ValueError(f"unknown L2X setting(s) {sorted(unknown)}; valid: {sorted(L2X_SETTINGS)}")
    s = {**L2X_SETTINGS, **settings}
    if not isinstance(s["baseline"], str):
        raise ValueError("baseline must be a named baseline for a cached L2X explainer; train_l2x takes a tensor")
    report = getattr(classifier, "report", None)
    if getattr(report, "cache_key", None) is None:
        raise ValueError("classifier must carry a training report (get_trained_model, get_mislabelled_model) to cache "
                         "its L2X explainer; use train_l2x(classifier, images, ...) for any other model")
    key = _key({"kind": "l2x", "classifier": report.cache_key, "k": k, "patch": patch, "seed": seed, "settings": s})
    folder = cache_dir("models")
    stem = f"{getattr(report, 'dataset', 'model')}-l2x-{key}"
    weights, meta = folder / f"{stem}.pt", folder / f"{stem}.json"
    if weights.exists() and meta.exists() and not retrain:
        rep = L2XReport(**json.loads(meta.read_text()))
        explainer = L2X(rep.k, rep.patch, rep.num_classes, width=s["width"], approximator=s["approximator"],
                        baseline=s["baseline"])
        explainer.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        explainer.to(model_device(classifier)).eval()
        explainer.report = rep
        return explainer
    train, _ = training_split(classifier)
    explainer = train_l2x(classifier, train, k=k, patch=patch, seed=seed, progress=progress,
                          targets=training_probabilities(classifier), **s)
    explainer.report.cache_key, explainer.report.classifier_key = key, report.cache_key
    from .train import save_cached_model

    return save_cached_model(explainer, explainer.report, weights, meta)


def training_probabilities(classifier: nn.Module) -> np.ndarray:
    """:math:`P_m(y|x)` [M, C] on the classifier's training split, from the latent features its example
    index caches beside it (:func:`medxai_lite.explain.examples.training_index`) passed through its
    final linear layer: the same numbers as a forward pass over the training images, which a
    second explainer of the same classifier then does not repeat."""
    from ..explain.examples import training_index
    from ..latent import classifier_head

    head = classifier_head(classifier)
    feats = torch.as_tensor(training_index(classifier).features, dtype=head.weight.dtype, device=head.weight.device)
    with torch.no_grad():
        return head(feats).float().softmax(1).cpu().numpy()


def uninformed_l2x_loss(probabilities) -> float:
    r"""The L2X training loss of an approximator that ignores the kept patches: the best constant
    prediction :math:`q = \bar p` (the mean of the classifier's probabilities ``probabilities``
    [M, C]) scores :math:`-\sum_c \bar p_c \log \bar p_c`. A training loss that stays at this
    level means the kept patches told the approximator nothing about the class."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0 or not np.isfinite(p).all() or (p < 0).any() \
            or not np.allclose(p.sum(1), 1.0, atol=1e-4):
        raise ValueError(f"probabilities must be class probabilities [M >= 1, C] with rows summing to 1; got shape "
                         f"{list(p.shape)}")
    mean = p.mean(0)
    return float(-(mean[mean > 0] * np.log(mean[mean > 0])).sum())


# ----------------------------------------------------------------------------- planted mislabels
def plant_mislabels(labels, n: int, *, source: int | None = None, target: int | None = None,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Relabel ``n`` images of class ``source`` as ``target``: ``(noisy labels, planted indices)``.

    ``source`` defaults to the most frequent class, ``target`` to the next class index (modulo the
    number of classes). The planted images are drawn with ``seed``; indices come back sorted.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or len(labels) == 0:
        raise ValueError(f"labels must be a non-empty 1-d integer array; got {labels.dtype} {list(labels.shape)}")
    n = check_positive_int("n", n)
    classes = int(labels.max()) + 1
    if classes < 2:
        raise ValueError("labels must hold at least two classes to plant mislabels")
    source = int(np.bincount(labels).argmax()) if source is None else source
    target = (source + 1) % classes if target is None else target
    for name, value in (("source", source), ("target", target)):
        if not isinstance(value, (int, np.integer)) or not 0 <= value < classes:
            raise ValueError(f"{name} must be a class index in 0..{classes - 1}; got {value!r}")
    if source == target:
        raise ValueError(f"target must differ from source; both are {source}")
    pool = np.flatnonzero(labels == source)
    if n > len(pool):
        raise ValueError(f"n must be at most the {len(pool)} images of class {source}; got {n}")
    planted = np.sort(np.random.default_rng(seed).choice(pool, n, replace=False))
    noisy = labels.astype(np.int64).copy()
    noisy[planted] = target
    return noisy, planted.astype(np.int64)


def train_classifier(train, labels=None, *, num_classes: int | None = None, width: int = 16, epochs: int = 10,
                     batch_size: int = 32, lr: float = 3e-3, weight_decay: float = 0.0, seed: int = 0) -> nn.Module:
    """A :class:`~medxai_lite.models.SmallCNN` of ``width`` fitted to ``labels`` (default: the
    dataset's) with Adam and cross-entropy for ``epochs`` (no validation, no early stopping: every
    training image, planted ones included, is fitted as given), BatchNorm statistics then
    recomputed on the training images (:func:`~medxai_lite.models.train.recalibrate_batchnorm`).
    Trains on :func:`medxai_lite.device` (the images may stay on the CPU: each batch is moved) and
    returns the model there, in eval mode, with ``model.history`` (mean loss per epoch)."""
    from .._utils import device
    from .train import fit, recalibrate_batchnorm
    from .zoo import SmallCNN

    images = as_images(train)
    if labels is None:
        if not hasattr(train, "labels"):
            raise ValueError("labels are required when train is an image tensor")
        labels = train.labels
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if y.shape != (len(images),):
        raise ValueError(f"labels must hold one class per image ({len(images)}); got shape {list(y.shape)}")
    num_classes = int(num_classes or max(int(y.max()) + 1, len(getattr(train, "classes", ())) or 2))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SmallCNN(num_classes, width=check_positive_int("width", width))
        dev = device()
        model.to(dev)          # initialised on the CPU, so the seed gives the same weights on any device
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(seed)
        history: list = []

        def batches(epoch):
            return [(images[i], y[i]) for i in torch.randperm(len(images), generator=gen).split(batch_size)]

        fit(model, opt, batches, check_positive_int("epochs", epochs), device=dev,
            on_epoch_end=lambda epoch, loss: history.append(loss) and False)
    # the running BatchNorm averages of a few hundred steps lag behind the weights: use the
    # population statistics of the training images instead ("precise BN")
    recalibrate_batchnorm(model, [{"image": image, "label": 0} for image in images])
    model.eval()
    model.history = history
    return model


@dataclass
class MislabelReport:
    """A classifier trained with planted mislabels: where its data came from, the labels it was
    trained on (``labels``), the ``planted`` indices and their true class ``source``."""
    dataset: str
    settings: dict
    classes: list
    labels: list
    planted: list
    source: int
    target: int
    seed: int = 0
    history: list = field(default_factory=list)
    seconds: float = 0.0
    cache_key: str = ""


def get_mislabelled_model(dataset: str, n_planted: int = 10, *, source: int | None = None, target: int | None = None,
                          image_size: int = 64, n_train: int = 300, width: int = 16, epochs: int = 10,
                          batch_size: int = 32, lr: float = 3e-3, seed: int = 0, retrain: bool = False) -> nn.Module:
    """A SmallCNN trained on the training split of phantom ``dataset`` with ``n_planted`` images of
    class ``source`` relabelled ``target`` (:func:`plant_mislabels`), from the cache or trained now.
    ``model.report`` is a :class:`MislabelReport`; :func:`medxai_lite.explain.examples.training_split`
    gives back the same training split and noisy labels, so ``explain("influence", model, x)`` ranks
    the images the model was trained on, under the labels it was trained with. The model comes
    back on :func:`medxai_lite.device`, in eval mode, like :func:`~medxai_lite.models.get_trained_model`'s."""
    from .._utils import device
    from ..data import PHANTOMS, load_dataset

    check_choice("dataset", dataset, PHANTOMS)
    settings = dict(image_size=image_size, n_train=n_train, width=width, epochs=epochs, batch_size=batch_size, lr=lr,
                    n_planted=n_planted, source=source, target=target)
    from .train import cache_key as model_key

    key = model_key(dataset, "small_cnn-mislabelled", "custom", seed, settings)
    folder = cache_dir("models")
    stem = f"{dataset}-mislabelled-{key}"
    weights, meta = folder / f"{stem}.pt", folder / f"{stem}.json"
    if weights.exists() and meta.exists() and not retrain:
        from .zoo import SmallCNN

        report = MislabelReport(**json.loads(meta.read_text()))
        model = SmallCNN(len(report.classes), width=width)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        model.to(device()).eval().report = report
        return model
    train = load_dataset(dataset, "train", image_size=image_size, n=n_train, seed=seed)
    noisy, planted = plant_mislabels(train.labels, n_planted, source=source, target=target, seed=seed)
    t0 = time.perf_counter()
    model = train_classifier(train, noisy, num_classes=len(train.classes), width=width, epochs=epochs,
                             batch_size=batch_size, lr=lr, seed=seed)
    report = MislabelReport(dataset=dataset, settings=settings, classes=list(train.classes), labels=noisy.tolist(),
                            planted=planted.tolist(), source=int(train.labels[planted[0]]), target=int(noisy[planted[0]]),
                            seed=seed, history=list(model.history), seconds=time.perf_counter() - t0, cache_key=key)
    from .train import save_cached_model

    return save_cached_model(model, report, weights, meta)
