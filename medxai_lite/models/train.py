"""Training with early stopping, evaluation, and a cache of trained weights.

``get_trained_model(dataset, arch, profile)`` trains once and afterwards loads the weights from
the cache folder (``$MEDXAI_CACHE/models``), keyed by a hash of every setting and the package
version. Weights are written atomically and read with ``weights_only=True``; a corrupt file is
rebuilt with a warning.
"""
from __future__ import annotations

import copy
import hashlib
import json
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from .._utils import atomic_path, cache_dir, cache_lock, check_choice, device, model_device, set_seed
from .zoo import ARCHS, DEFAULT_ARCH, arch_spec, get_model

__all__ = ["PROFILES", "ARCH_SETTINGS", "PRECISIONS", "TRAINING_REVISION", "CPU_CHANNELS_LAST", "TrainingReport",
           "fit", "train_model", "evaluate", "get_trained_model", "cache_key", "data_version",
           "recalibrate_batchnorm", "training_precision", "training_seconds"]

#: Training profiles. ``cpu``: 96 px, phantom-sized data, few epochs, random init, and output
#: stride 16 (8 for the default ResNet14, see ``ARCH_SETTINGS``), so the default ResNet14's last
#: block is a 12 x 12 grid of 8 px cells. Measured with ``benchmarks/bench_default_models.py``
#: (Grad-CAM, strict pointing game and relevance mass accuracy over a random map's, on the first
#: 32 test lesions of brain / skin / chest; training seconds for the three on a 2-core CPU):
#: 112 px at stride 16 (7 x 7 cells of 16 px): PG 0.16 / 0.78 / 0.31, RMA 3.3x / 1.7x / 2.2x, 264 s,
#: and the brain lesions contain a cell centre in only 39 % of images; 112 px at stride 8
#: (14 x 14): PG 0.63 / 0.94 / 0.72, RMA 3.5x / 2.0x / 2.3x, 430 s; 96 px at stride 8 (12 x 12):
#: PG 0.66 / 0.94 / 0.88, RMA 3.3x / 2.1x / 2.5x, 307 s (float32 on an AVX2 CPU; in bfloat16 on an
#: AVX-512 BF16 CPU: PG 0.69 / 0.94 / 0.78, RMA 3.4x / 2.2x / 2.4x, 105 s; with channels-last steps,
#: training revision 2: PG 0.56 / 0.97 / 0.88, RMA 3.4x / 2.2x / 2.4x, 91 s in bfloat16 and
#: PG 0.63 / 0.97 / 0.84, RMA 3.3x / 2.1x / 2.4x, 150 s in float32). Earlier ResNet18 measurements: at 80 px
#: (5 x 5) the chest pointing game fell to 0.51, and with 480 images to 0.66. 640 training images and
#: 6 epochs. ``paper``: 224 px, ImageNet weights, the full datasets (the phantoms draw 4,000
#: training images), 30 epochs.
PROFILES = {
    "cpu": dict(image_size=96, output_stride=16, n_train=640, n_val=200, n_test=400, epochs=6, batch_size=32,
                lr=1e-3, weight_decay=1e-4, patience=3, pretrained=False, zero_init_residual=False, precise_bn=0,
                precision="auto"),
    "paper": dict(image_size=224, output_stride=32, n_train=None, n_val=None, n_test=None, epochs=30, batch_size=32,
                  lr=1e-4, weight_decay=1e-4, patience=5, pretrained=True, zero_init_residual=False, precise_bn=0,
                  precision="auto"),
}
#: Settings an architecture needs beyond its profile's. A transformer trained from scratch learns
#: slowly at first and its validation score is noisy, so the hybrid ViT trains longer, with the
#: decoupled weight decay of ViT training recipes (0.05; Touvron et al. 2021, DeiT, Table 9), and
#: without early stopping (patience = epochs). Its ``cpu`` steps run in float32 even where bfloat16
#: is native: autocast's casts cost more than the small matrices gain (an epoch of the brain phantom
#: took 4.7 s in bfloat16 and 3.3 s in float32 on a 2-core AVX-512 BF16 CPU; the three ViTs 107 s
#: and 82 s).
ARCH_SETTINGS = {
    # ResNet14 downsamples by 16 (its fourth stage is gone): 14 x 14 at 224 px. In the cpu
    # profile its third stage is dilated (stride 8): 12 x 12 cells at 96 px
    "resnet14": {"cpu": dict(output_stride=8), "paper": dict(output_stride=16)},
    "hybrid_vit": {"cpu": dict(epochs=10, weight_decay=0.05, patience=10, precision="fp32"),
                   "paper": dict(pretrained=False, epochs=40, lr=5e-4, weight_decay=0.05, patience=40)},
}
#: Revision of :func:`fit`'s arithmetic, part of every cache key: weights trained by an older loop are
#: not loaded as if this one had made them. 2: CPU training steps run channels-last (measured per
#: step on a 2-core AVX-512 BF16 CPU, batch 32, bf16 autocast, contiguous -> channels-last: ResNet14
#: at 96 px 258 -> 228 ms, ResNet50 at 80 px 610 -> 552 ms, DenseNet121 521 -> 393 ms, EfficientNet-B0
#: 467 -> 399 ms, VGG16 2110 -> 2095 ms, SmallCNN 344 -> 273 ms; float32 ResNet14 459 -> 420 ms).
TRAINING_REVISION = 2
#: Whether :func:`fit` lays CPU batches and weights out channels-last. Set it to False to train in the
#: default layout, e.g. to compare a CPU run with a GPU run of the same seed (the GPU path does not
#: change layout) to the last bit of arithmetic order.
CPU_CHANNELS_LAST = True
#: Training arithmetic: ``"fp32"``, ``"bf16"`` (mixed precision through ``torch.autocast``) or
#: ``"auto"`` (bf16 where the hardware has it natively, see :func:`training_precision`).
PRECISIONS = ("auto", "fp32", "bf16")
#: Seconds this process has spent training in :func:`get_trained_model` (see :func:`training_seconds`).
_TRAINING_CLOCK = [0.0]
# the phantoms have no "full data": the paper profile draws this many
_PHANTOM_PAPER_SIZES = dict(n_train=4000, n_val=600, n_test=1000)


@dataclass
class TrainingReport:
    """What training produced: the per-epoch history and the test metrics."""
    dataset: str
    arch: str
    profile: str
    classes: list
    settings: dict
    history: list = field(default_factory=list)   # [{"epoch", "train_loss", "val_loss", "val_macro_f1"}]
    test: dict = field(default_factory=dict)      # accuracy, macro_f1, per_class_f1, confusion
    best_epoch: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    cache_key: str = ""

    def summary(self) -> str:
        t = self.test
        return (f"{self.arch} on {self.dataset} ({self.profile}): accuracy {t['accuracy']:.3f}, "
                f"macro-F1 {t['macro_f1']:.3f}, best epoch {self.best_epoch}, {self.seconds:.0f} s on {self.device}")


def save_cached_model(model, report, weights, meta):
    """Write ``model``'s weights and its dataclass ``report`` (as JSON) into the cache, each
    atomically (never half-written), add ``report.seconds`` to this process's training clock
    (:func:`training_seconds`), attach the report as ``model.report`` and return the model."""
    _TRAINING_CLOCK[0] += report.seconds
    with atomic_path(weights) as tmp:
        torch.save(model.state_dict(), tmp)
    with atomic_path(meta) as tmp:
        tmp.write_text(json.dumps(asdict(report), indent=1))
    model.report = report
    return model


def _loader(ds, batch_size, shuffle, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=g, num_workers=0,
                                       collate_fn=_collate)


def _collate(items):
    return torch.stack([it["image"] for it in items]), torch.tensor([it["label"] for it in items])


@torch.no_grad()
def evaluate(model: nn.Module, dataset, batch_size: int = 64, classes=None) -> dict:
    """Accuracy, macro-F1, per-class F1, confusion matrix and mean loss of ``model`` on ``dataset``."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    was_training = model.training
    model.eval()
    dev = model_device(model)
    ys, ps, loss = [], [], 0.0
    for x, y in _loader(dataset, batch_size, False, 0):
        out = model(x.to(dev))
        loss += nn.functional.cross_entropy(out, y.to(dev), reduction="sum").item()
        ys.append(y.numpy())
        ps.append(out.argmax(1).cpu().numpy())
    model.train(was_training)
    y, p = np.concatenate(ys), np.concatenate(ps)
    k = len(classes or dataset.classes)
    return {
        "accuracy": float(accuracy_score(y, p)),
        "macro_f1": float(f1_score(y, p, average="macro", labels=list(range(k)), zero_division=0)),
        "per_class_f1": [float(v) for v in f1_score(y, p, average=None, labels=list(range(k)), zero_division=0)],
        "confusion": confusion_matrix(y, p, labels=list(range(k))).tolist(),
        "loss": loss / max(len(y), 1),
        "n": int(len(y)),
    }


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, dataset, batch_size: int = 64, max_images: int | None = None) -> int:
    """Replace every BatchNorm's running mean and variance by the population statistics of ``dataset``.

    "Precise BN" (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", §3): after a few hundred
    fast-moving steps, the exponential moving averages lag behind the weights and the network in
    eval mode can predict one class for every input. With ``momentum=None`` PyTorch keeps the
    cumulative average instead, so one forward pass in train mode over ``dataset`` (its first
    ``max_images`` items when given) gives the statistics of the final weights. Gradients are off
    and the weights are unchanged. Returns the number of BatchNorm layers recalibrated (0 leaves
    the model untouched).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    if max_images is not None:
        if int(max_images) < 2:
            raise ValueError(f"max_images must be at least 2 (a batch variance needs two images), got {max_images}")
        dataset = torch.utils.data.Subset(dataset, range(min(int(max_images), len(dataset))))
    was_training, momenta = model.training, [b.momentum for b in bns]
    for b in bns:
        b.reset_running_stats()
        b.momentum = None
    model.train()
    dev = model_device(model)
    for x, _ in _loader(dataset, batch_size, False, 0):
        model(x.to(dev))
    for b, m in zip(bns, momenta):
        b.momentum = m
    model.train(was_training)
    return len(bns)


def training_seconds() -> float:
    """Seconds this Python process has spent training models in :func:`get_trained_model` so far
    (0 when every model came from the cache). A notebook's timer subtracts it to report the time a
    reader with a warm cache will wait (:mod:`medxai_lite.book`)."""
    return _TRAINING_CLOCK[0]


def training_precision(dev: torch.device | str | None = None) -> str:
    """What ``precision="auto"`` trains in on ``dev`` (default: :func:`medxai_lite.device`).

    ``"bf16"`` on a CPU whose oneDNN kernels run bfloat16 natively (AVX512-BF16 or AMX tiles),
    ``"fp32"`` on any other CPU, where bfloat16 would be emulated and slower, and on a GPU, where
    training time is not the book's bottleneck. bfloat16 keeps float32's exponent range, so mixed
    precision training needs no loss scaling and matches float32 accuracy on CNNs (Kalamkar et al.
    2019, "A Study of BFLOAT16 for Deep Learning Training"). On this book's 2-core CPU a ResNet18
    step at 112 px takes half the time (``benchmarks/bench_default_models.py --precision``).
    """
    dev = torch.device(dev) if dev is not None else device()
    if dev.type != "cpu":
        return "fp32"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):   # a torch build without oneDNN
        native = False
    return "bf16" if native else "fp32"


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, batches, epochs: int, *, scheduler=None,
        on_epoch_end=None, device: torch.device | None = None, precision: str = "fp32") -> int:
    """The package's one training loop: cross-entropy, one optimiser step per batch.

    For each epoch ``1 .. epochs``: the model is put in train mode, every ``(images, labels)``
    batch of ``batches(epoch)`` (moved to ``device`` when one is given) makes one step of
    ``optimizer`` on the mean cross-entropy, then ``scheduler.step()`` runs (when given) and
    ``on_epoch_end(epoch, train_loss)`` is called with the epoch's mean loss; it returns True to
    stop early. :func:`train_model` (validation, early stopping) and
    :func:`medxai_lite.metrics.make_train_fn` (the label-randomisation test) both train with it.
    ``precision="bf16"`` runs the forward pass and loss under ``torch.autocast`` in bfloat16 (the
    weights, gradients and optimiser state stay float32); ``"fp32"`` is plain float32.

    On a CPU, image batches and convolution weights are laid out channels-last while the loop runs
    (oneDNN's native layout: 10-25 % shorter steps for the zoo's CNNs on a 2-core CPU, see
    :data:`TRAINING_REVISION`); the model is handed back in PyTorch's default layout, so a model
    just trained and the same weights loaded from the cache compute alike.

    Returns the number of epochs run.
    """
    check_choice("precision", precision, ("fp32", "bf16"))
    run = 0
    on_cpu = CPU_CHANNELS_LAST and torch.device(device if device is not None else model_device(model)).type == "cpu"
    if on_cpu:
        model.to(memory_format=torch.channels_last)          # only 4-D (convolution) weights change layout
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            total, count = 0.0, 0
            for x, y in batches(epoch):
                if device is not None:
                    x, y = x.to(device), y.to(device)
                if on_cpu and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(y)
                count += len(y)
            run = epoch
            if scheduler is not None:
                scheduler.step()
            if on_epoch_end is not None and on_epoch_end(epoch, total / max(count, 1)):
                break
    finally:
        if on_cpu:
            model.to(memory_format=torch.contiguous_format)
    return run


def train_model(model: nn.Module, train_set, val_set, *, epochs: int, batch_size: int, lr: float,
                weight_decay: float = 1e-4, patience: int = 3, seed: int = 0, progress: bool = True,
                precise_bn: int = 0, precision: str = "fp32"):
    """Train with AdamW and cross-entropy; keep the weights of the best validation macro-F1.

    Stops early after ``patience`` epochs without improvement, or as soon as the validation
    macro-F1 is 1: nothing can beat it, so the weights returned are the ones the remaining epochs
    would have returned too (a shortcut model reaches it after one epoch). Deterministic on CPU for
    a seed.
    ``precise_bn=n`` (n > 0) recomputes the BatchNorm statistics on the first ``n`` training
    images before each validation (:func:`recalibrate_batchnorm`); 0 keeps the running averages.
    ``precision`` is the training steps' arithmetic (:func:`fit`); validation runs in float32.
    Returns ``(model, history, best_epoch)``; the model is returned in eval mode.
    """
    from tqdm.auto import tqdm

    set_seed(seed)
    dev = device()
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    best = {"f1": -1.0, "state": None, "epoch": 0, "waited": 0}
    history = []
    bar = tqdm(total=epochs, desc="epochs", disable=not progress, leave=False)

    def end_of_epoch(epoch: int, train_loss: float) -> bool:
        """Validate, keep the best weights; True (stop) after ``patience`` epochs without progress."""
        if precise_bn:
            recalibrate_batchnorm(model, train_set, max_images=int(precise_bn))
        val = evaluate(model, val_set, classes=train_set.classes)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val["loss"],
                        "val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"]})
        bar.update()
        bar.set_postfix(loss=f"{train_loss:.3f}", val_f1=f"{val['macro_f1']:.3f}")
        if val["macro_f1"] > best["f1"] + 1e-4:
            best.update(f1=val["macro_f1"], epoch=epoch, waited=0, state=copy.deepcopy(model.state_dict()))
            return best["f1"] >= 1.0 - 1e-4     # a perfect score cannot be improved on
        best["waited"] += 1
        return best["waited"] >= patience

    fit(model, opt, lambda epoch: _loader(train_set, batch_size, True, seed + epoch), epochs, scheduler=sched,
        on_epoch_end=end_of_epoch, device=dev, precision=precision)
    bar.close()
    best_state, best_epoch = best["state"], best["epoch"]
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history, best_epoch


def _stride(arch: str, settings: dict) -> int:
    """The profile's output stride; the package's own networks (SmallCNN, the hybrid ViT) have a
    fixed stride and take the default."""
    return 32 if arch_spec(arch).builder is not None else int(settings.get("output_stride", 32))


def _resolve(dataset: str, profile: str, overrides: dict, arch: str | None = None) -> dict:
    check_choice("profile", profile, PROFILES)
    settings = dict(PROFILES[profile])
    if dataset.startswith("phantom-") and profile == "paper":
        settings.update(_PHANTOM_PAPER_SIZES)
    settings.update(ARCH_SETTINGS.get(arch, {}).get(profile, {}))
    unknown = set(overrides) - set(settings) - {"difficulty", "shortcut", "class_balance"}
    if unknown:
        raise ValueError(f"unknown training setting(s) {sorted(unknown)}; valid: "
                         f"{sorted(set(settings) | {'difficulty', 'shortcut', 'class_balance'})}")
    settings.update(overrides)
    check_choice("precision", settings["precision"], PRECISIONS)
    if settings["precision"] == "auto":      # resolved here, so the cache key names the arithmetic used
        settings["precision"] = training_precision()
    return settings


def data_version(dataset: str) -> str | int | None:
    """What version of ``dataset``'s images a model was trained on, for the cache key.

    A phantom: the generator's version. A public dataset: a hash of its prepared manifest (classes,
    split counts, ``max_size``, sources) without the preparation time, so re-preparing with another
    ``max_size`` or from another archive trains anew, and re-preparing the same archive does not.
    None when the dataset is not prepared (loading it then says how to fetch it)."""
    if dataset.startswith("phantom-"):
        from ..data.phantoms import GENERATOR_VERSION

        return GENERATOR_VERSION
    from ..data.fetch import data_root

    try:
        manifest = json.loads((data_root() / dataset / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    manifest.pop("prepared", None)
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_key(dataset: str, arch: str, profile: str, seed: int, settings: dict) -> str:
    """Hash of every setting that changes the weights, plus the package and torch versions, the
    data's (:func:`data_version`) and the training loop's (:data:`TRAINING_REVISION`)."""
    from .. import __version__

    blob = json.dumps({"dataset": dataset, "arch": arch, "profile": profile, "seed": seed, "settings": settings,
                       "medxai_lite": __version__, "torch": torch.__version__.split("+")[0],
                       "data_version": data_version(dataset), "training": TRAINING_REVISION},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def get_trained_model(dataset: str, arch: str = DEFAULT_ARCH, profile: str = "cpu", seed: int = 0, *,
                      retrain: bool = False, progress: bool = True, **overrides) -> nn.Module:
    """A model trained on ``dataset``, from the cache when it is there, else trained now and cached.

    ``overrides`` change profile settings (``epochs``, ``image_size``, ``n_train``...) or phantom
    knobs (``difficulty``, ``shortcut``, ``class_balance``); each combination has its own cache
    entry. The returned model is in eval mode on :func:`medxai_lite.device` and carries
    ``model.report`` (a :class:`TrainingReport`: history and test accuracy / F1 / confusion).

    Example
    -------
    >>> model = get_trained_model("phantom-chest-xray")    # the default ResNet14    # doctest: +SKIP
    >>> model.report.test["accuracy"]                                  # doctest: +SKIP
    """
    from ..data import load_dataset, list_datasets

    check_choice("dataset", dataset, list_datasets())
    check_choice("arch", arch, ARCHS)
    settings = _resolve(dataset, profile, overrides, arch)
    key = cache_key(dataset, arch, profile, seed, settings)
    folder = cache_dir("models")
    weights, meta = folder / f"{dataset}-{arch}-{profile}-{key}.pt", folder / f"{dataset}-{arch}-{profile}-{key}.json"

    knobs = {k: settings[k] for k in ("difficulty", "shortcut", "class_balance") if k in settings}
    size = settings["image_size"]

    def data(split, n):
        return load_dataset(dataset, split=split, image_size=size, n=n, seed=seed, **knobs)

    def cached():
        """The cached model, or None when the entry is missing or unreadable."""
        if retrain or not (weights.exists() and meta.exists()):
            return None
        try:
            report = TrainingReport(**json.loads(meta.read_text()))
            model = get_model(arch, len(report.classes), pretrained=False, output_stride=_stride(arch, report.settings))
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            model.to(device()).eval()
            model.report = report
            return model
        except Exception as exc:  # noqa: BLE001 - any unreadable cache entry is rebuilt
            warnings.warn(f"cached model {weights.name} could not be read ({type(exc).__name__}: {exc}); "
                          "retraining it.", RuntimeWarning, stacklevel=2)
            return None

    model = cached()
    if model is not None:
        return model
    with cache_lock(weights):       # another process may be training the same model: wait, then read it
        model = cached()
        if model is not None:
            return model
        return _train_and_cache(dataset, arch, profile, seed, settings, key, weights, meta, data, progress)


def _train_and_cache(dataset, arch, profile, seed, settings, key, weights, meta, data, progress) -> nn.Module:
    train_set, val_set = data("train", settings["n_train"]), data("val", settings["n_val"])
    test_set = data("test", settings["n_test"])
    set_seed(seed)
    model = get_model(arch, len(train_set.classes), pretrained=settings["pretrained"],
                      zero_init_residual=settings["zero_init_residual"], output_stride=_stride(arch, settings))
    t0 = time.perf_counter()
    model, history, best_epoch = train_model(
        model, train_set, val_set, epochs=settings["epochs"], batch_size=settings["batch_size"], lr=settings["lr"],
        weight_decay=settings["weight_decay"], patience=settings["patience"], seed=seed, progress=progress,
        precise_bn=settings["precise_bn"], precision=settings["precision"])
    seconds = time.perf_counter() - t0
    report = TrainingReport(dataset=dataset, arch=arch, profile=profile, classes=list(train_set.classes),
                            settings=settings, history=history, test=evaluate(model, test_set),
                            best_epoch=best_epoch, seconds=seconds, device=str(device()), cache_key=key)
    return save_cached_model(model, report, weights, meta)
