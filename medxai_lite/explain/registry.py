"""The explanation registry and the one verb every chapter uses: ``explain``.

Each method is a small *adapter* (a few lines around a library call) registered with
``@register(name, family=..., library=..., ...)``. ``explain(method, model, images, targets)``
validates the input, works out the architecture, refuses what the registry says cannot work,
runs the adapter inside a guard that removes every hook and restores every parameter's
``.grad`` / ``requires_grad`` (also after an error), and returns an :class:`Explanation` whose
``maps`` all share one contract: ``float32 [N, H, W]`` in ``[0, 1]`` at input resolution.

Example
-------
>>> from medxai_lite.explain import explain
>>> result = explain("gradcam", model.eval(), images)          # images: float32 [N, 3, H, W]
>>> result.maps.shape, result.family
((8, 128, 128), 'CAM-based')
"""
from __future__ import annotations

import contextlib
import inspect
import time
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .._utils import check_choice, check_eval_model, check_images

__all__ = [
    "Explanation",
    "MethodInfo",
    "METHODS",
    "UnsupportedArchitectureError",
    "register",
    "explain",
    "list_methods",
    "methods_table",
    "compatibility_matrix",
    "infer_arch",
    "hook_guard",
]

#: Cost classes, from one or two passes ("fast") to one pass per channel or sample ("slow").
COSTS = ("fast", "medium", "slow")
#: How a method turns its raw map into ``maps`` in [0, 1] (see :func:`_to_unit`).
SIGNS = ("positive", "absolute", "negative", "all", "minmax")


class UnsupportedArchitectureError(ValueError):
    """Raised when the registry records that a method does not work on an architecture."""


@dataclass(frozen=True)
class MethodInfo:
    """One registry entry. ``unsupported`` maps an architecture to the reason it is refused."""

    name: str
    title: str
    family: str
    library: str
    needs_gradients: bool
    cost: str
    paper: str
    func: Callable[..., "_Result"]
    sign: str = "positive"
    unsupported: Mapping[str, str] = field(default_factory=dict)
    options: tuple[str, ...] = ()

    def supports(self, arch: str | None) -> bool:
        """Whether ``arch`` is supported (an unknown architecture, ``None``, is not refused)."""
        return arch not in self.unsupported

    def reason(self, arch: str) -> str | None:
        """Why ``arch`` is not supported, or ``None`` when it is."""
        return self.unsupported.get(arch)

    @property
    def archs(self) -> tuple[str, ...]:
        """The architectures of the model zoo this method supports."""
        from ..models.zoo import ARCHS

        return tuple(a for a in ARCHS if self.supports(a))

    @property
    def summary(self) -> str:
        """First line of the adapter's docstring."""
        doc = inspect.getdoc(self.func)
        return doc.splitlines()[0] if doc else ""


_REGISTRY: dict[str, MethodInfo] = {}
#: Read-only view of the registry: method name -> :class:`MethodInfo`.
METHODS: Mapping[str, MethodInfo] = types.MappingProxyType(_REGISTRY)


def register(
    name: str,
    *,
    title: str,
    family: str,
    library: str,
    needs_gradients: bool,
    cost: str,
    paper: str,
    sign: str = "positive",
    unsupported: Mapping[str, str] | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator adding an adapter ``func(call, **options) -> _Result`` to the registry.

    The adapter's keyword parameters (after ``call``) are the method's options; ``explain``
    rejects any other option by name. Example
    -------
    >>> @register("my_method", title="My method", family="Gradient-based", library="captum",
    ...           needs_gradients=True, cost="fast", paper="Doe 2024")
    ... def _my_method(call, steps: int = 8):
    ...     ...
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if not isinstance(family, str) or not family:
        raise ValueError(f"family must be a non-empty string, got {family!r}")
    check_choice("cost", cost, COSTS)
    check_choice("sign", sign, SIGNS)

    def decorate(func: Callable) -> Callable:
        known = _REGISTRY.get(name)
        same = known is not None and known.func.__qualname__ == func.__qualname__ \
            and known.func.__module__ == func.__module__
        if known is not None and not same:
            raise ValueError(f"method {name!r} is already registered by {known.func.__module__}")
        # (the same adapter registering again is a module reload, e.g. autoreload in a notebook)
        params = list(inspect.signature(func).parameters.values())[1:]
        _REGISTRY[name] = MethodInfo(
            name=name, title=title, family=family, library=library,
            needs_gradients=needs_gradients, cost=cost, paper=paper, func=func, sign=sign,
            unsupported=types.MappingProxyType(dict(unsupported or {})),
            options=tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD),
        )
        return func

    return decorate


def list_methods(family: str | None = None) -> list[str]:
    """Names of the registered methods, in registration order, optionally of one ``family``.

    >>> list_methods("CAM-based")[:3]
    ['cam', 'gradcam', 'gradcampp']
    """
    if family is not None:
        check_choice("family", family, sorted({m.family for m in _REGISTRY.values()}))
    return [n for n, m in _REGISTRY.items() if family is None or m.family == family]


def methods_table(family: str | None = None):
    """The registry as a pandas DataFrame (one row per method)."""
    import pandas as pd

    rows = [
        {"method": m.name, "title": m.title, "family": m.family, "library": m.library,
         "needs_gradients": m.needs_gradients, "cost": m.cost, "paper": m.paper,
         "options": ", ".join(m.options)}
        for m in (_REGISTRY[n] for n in list_methods(family))
    ]
    return pd.DataFrame(rows).set_index("method")


def compatibility_matrix(archs: Sequence[str] | None = None, family: str | None = None):
    """Method x architecture table of ``"yes"`` or ``"no: <reason>"``, read from the registry.

    A method is marked supported on an architecture only where its defining property was
    checked by the test-suite (e.g. LRP conservation, DeepLIFT summation-to-delta).

    >>> compatibility_matrix(["resnet50", "vgg16"]).loc["cam", "vgg16"]
    'no: ...'
    """
    import pandas as pd

    from ..models.zoo import ARCHS

    archs = list(ARCHS if archs is None else archs)
    for arch in archs:
        check_choice("archs", arch, ARCHS)
    names = list_methods(family)
    data = {a: ["yes" if _REGISTRY[n].supports(a) else f"no: {_REGISTRY[n].reason(a)}" for n in names]
            for a in archs}
    return pd.DataFrame(data, index=pd.Index(names, name="method"))


# --------------------------------------------------------------------------- results


@dataclass
class Explanation:
    """The result of :func:`explain`.

    Attributes
    ----------
    maps : np.ndarray, float32 [N, H, W]
        Relevance in [0, 1] at input resolution, one map per image (1 = most relevant).
    raw : np.ndarray, float32 [N, H, W]
        The same maps before normalisation (signed where the method is signed, e.g. the
        channel sum of Integrated Gradients, DeepLIFT or LRP relevance, whose total is the
        explained logit difference; the un-rectified weighted sum of feature maps for CAMs).
    method, family : str
    targets : np.ndarray, int64 [N]
        The explained class of each image (the predicted class when ``targets=None``).
    seconds : float
        Wall-clock time of the method itself (validation excluded).
    arch : str or None
        The architecture the call was checked against.
    options : dict
        The options that were passed.
    extras : dict
        Method-specific outputs, e.g. ``"attributions"`` (float32 [N, C, H, W]) for the
        gradient family or ``"convergence_delta"`` for Integrated Gradients and DeepLIFT.
    """

    maps: np.ndarray
    raw: np.ndarray
    method: str
    family: str
    targets: np.ndarray
    seconds: float
    arch: str | None = None
    options: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.maps)

    def __repr__(self) -> str:
        return (f"Explanation(method={self.method!r}, family={self.family!r}, maps={tuple(self.maps.shape)}, "
                f"arch={self.arch!r}, seconds={self.seconds:.3f})")


@dataclass
class _Result:
    """What an adapter hands back. ``raw`` [N, H, W] at input resolution (tensor or array);
    ``maps`` only when the library already normalised them; ``targets`` when the library chose
    the predicted class itself."""

    raw: Any
    maps: Any = None
    targets: Any = None
    extras: dict = field(default_factory=dict)


class Call:
    """The validated request an adapter works on.

    Attributes: ``model`` (eval mode, parameters frozen during the call), ``images``
    float [N, C, H, W] on the model's device, ``targets`` int64 tensor [N] or ``None`` (not yet
    known: predicted class), ``arch`` (``None`` for a model outside the zoo), ``size`` (H, W).
    """

    def __init__(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor | None, arch: str | None):
        self.model = model
        self.images = images
        self.targets = targets
        self.arch = arch
        self.size = tuple(images.shape[-2:])

    def inputs(self, requires_grad: bool = True) -> torch.Tensor:
        """A fresh alias of the images (shares memory) that may require gradients."""
        return self.images.detach().requires_grad_(requires_grad)

    def require_targets(self) -> torch.Tensor:
        """The targets, predicting them (one forward pass, no gradients) when not given."""
        if self.targets is None:
            with torch.no_grad():
                self.targets = self.model(self.images).argmax(1)
        return self.targets

    def layers(self, layer=None) -> list[nn.Module]:
        """Resolve ``layer`` (module, dotted name or a list of those; default: the arch's CAM layer)."""
        if layer is None:
            return [_default_layer(self.model, self.arch, self.images)]
        items = list(layer) if isinstance(layer, (list, tuple)) else [layer]
        if not items:
            raise ValueError("layer must name at least one module; got an empty list")
        return [_resolve_layer(self.model, item) for item in items]

    def layer_name(self, module: nn.Module) -> str:
        for name, candidate in self.model.named_modules():
            if candidate is module:
                return name
        raise ValueError("layer is not a module of this model")  # pragma: no cover - checked earlier


def _default_layer(model: nn.Module, arch: str | None, images: torch.Tensor) -> nn.Module:
    if arch is not None:
        from ..models.zoo import target_layer

        return target_layer(model, arch)
    # A model outside the zoo: the last module whose output still has a spatial extent.
    from torchcam.methods._utils import locate_candidate_layer

    name = locate_candidate_layer(model, tuple(images.shape[1:]))
    if name is None:
        raise ValueError("layer could not be found automatically for this model; pass layer='<module name>'")
    return model.get_submodule(name)


def _resolve_layer(model: nn.Module, layer) -> nn.Module:
    names = {m: n for n, m in model.named_modules()}
    if isinstance(layer, nn.Module):
        if layer not in names:
            raise ValueError(f"layer {type(layer).__name__} is not a module of this model; "
                             "pass one of its submodules or a dotted name from model.named_modules()")
        return layer
    if isinstance(layer, str):
        valid = [n for n in names.values() if n]
        if layer in valid:
            return model.get_submodule(layer)
        import difflib

        close = difflib.get_close_matches(layer, valid, n=5, cutoff=0.5)
        shown = valid if len(valid) <= 40 else valid[:40] + [f"... ({len(valid)} names in all)"]
        hint = f" Closest: {', '.join(close)}." if close else ""
        raise ValueError(f"layer {layer!r} is not a module of this model.{hint} Valid names: {', '.join(shown)}")
    raise TypeError(f"layer must be an nn.Module, a dotted module name or a list of those; got {type(layer).__name__}")


# --------------------------------------------------------------------------- validation


def infer_arch(model: nn.Module) -> str | None:
    """The zoo architecture ``model`` is built like, from its class; ``None`` when unknown.

    torchvision ResNet with Bottleneck blocks -> ``"resnet50"``, with BasicBlocks ->
    ``"resnet18"``; DenseNet -> ``"densenet121"``; VGG -> ``"vgg16"``; EfficientNet ->
    ``"efficientnet_b0"``; :class:`~medxai_lite.models.zoo.SmallCNN` -> ``"small_cnn"``.
    """
    from torchvision.models import VGG, DenseNet, EfficientNet, ResNet
    from torchvision.models.resnet import Bottleneck

    from ..models.zoo import SmallCNN

    if isinstance(model, SmallCNN):
        return "small_cnn"
    if isinstance(model, ResNet):
        return "resnet50" if isinstance(model.layer1[0], Bottleneck) else "resnet18"
    for cls, arch in ((DenseNet, "densenet121"), (VGG, "vgg16"), (EfficientNet, "efficientnet_b0")):
        if isinstance(model, cls):
            return arch
    return None


def _check_method(method) -> MethodInfo:
    if not isinstance(method, str) or method not in _REGISTRY:
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(_REGISTRY)}")
    return _REGISTRY[method]


def _check_model(model) -> None:
    check_eval_model(model, "explanations")


def _first_conv(model: nn.Module) -> nn.Module | None:
    return next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)


def _check_images(images, model: nn.Module) -> torch.Tensor:
    images = check_images(images)
    first = _first_conv(model)
    if isinstance(first, nn.Conv2d) and images.shape[1] != first.in_channels:
        raise ValueError(f"images must have {first.in_channels} channels for this model; "
                         f"got shape {list(images.shape)}")
    param = next(model.parameters(), None)
    if param is not None:
        images = images.to(device=param.device, dtype=param.dtype)
    return images


def _num_classes(model: nn.Module) -> int | None:
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    return None if last is None else last.out_features


def _check_targets(targets, n: int, model: nn.Module, images: torch.Tensor) -> torch.Tensor | None:
    if targets is None:
        return None
    try:
        values = targets.detach().cpu() if isinstance(targets, torch.Tensor) else torch.as_tensor(np.asarray(targets))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"targets must be None, an int or a sequence of N = {n} ints; got {targets!r}") from exc
    if values.dtype == torch.bool or values.is_floating_point() or values.is_complex():
        raise TypeError(f"targets must be integers (class indices); got dtype {values.dtype}")
    values = values.long().reshape(-1) if values.ndim <= 1 else values
    if values.ndim != 1:
        raise ValueError(f"targets must be an int or a sequence of N = {n} ints; got shape {list(values.shape)}")
    if values.numel() == 1 and n > 1:
        values = values.expand(n).clone()
    if values.numel() != n:
        raise ValueError(f"targets must have one entry per image (N = {n}); got {values.numel()}")
    num_classes = _num_classes(model)
    if num_classes is None:
        with torch.no_grad():
            num_classes = model(images[:1]).shape[-1]
    bad = [int(v) for v in values if not 0 <= int(v) < num_classes]
    if bad:
        raise ValueError(f"targets out of range: {bad}; valid class indices are 0 .. {num_classes - 1}")
    return values.to(images.device)


# --------------------------------------------------------------------------- the guard


_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
# bookkeeping dicts keyed by the same hook ids
_HOOK_SIDE_DICTS = {"_forward_hooks": ("_forward_hooks_with_kwargs", "_forward_hooks_always_called"),
                    "_forward_pre_hooks": ("_forward_pre_hooks_with_kwargs",)}
_MISSING = object()


@contextlib.contextmanager
def hook_guard(model: nn.Module, freeze: bool = True) -> Iterator[nn.Module]:
    """Leave ``model`` exactly as found: hooks, submodules, modes, ``.grad`` and ``requires_grad``.

    On entry it records every module's hook dictionaries, children, training flag and any
    per-instance ``forward``, plus every parameter's ``.grad`` (copied) and ``requires_grad``;
    with ``freeze`` it sets ``requires_grad=False`` so backward passes compute input
    gradients only. On exit, also after an exception, hooks added meanwhile are removed (the
    libraries' own clean-up is not trusted to run on error), replaced submodules are put back
    (pytorch-grad-cam's Ablation-CAM swaps the target layer) and everything else restored.
    """
    from torch.nn.modules import module as module_globals

    records = []
    for m in model.modules():
        hooks = tuple(tuple(getattr(m, d)) for d in _HOOK_DICTS)
        records.append((m, hooks, dict(m._modules), m.training, m.__dict__.get("forward", _MISSING),
                        getattr(m, "_is_full_backward_hook", None)))
    global_dicts = [getattr(module_globals, n) for n in dir(module_globals)
                    if n.startswith("_global_") and n.endswith("hooks")
                    and isinstance(getattr(module_globals, n), dict)]
    global_keys = [tuple(d) for d in global_dicts]
    params = [(p, None if p.grad is None else p.grad.detach().clone(), p.requires_grad) for p in model.parameters()]
    try:
        if freeze:
            for p, _, _ in params:
                p.requires_grad_(False)
        yield model
    finally:
        for m, hooks, children, training, forward, full_flag in records:
            for d, keep in zip(_HOOK_DICTS, hooks):
                table = getattr(m, d)
                if len(table) != len(keep) or tuple(table) != keep:
                    for key in [k for k in table if k not in keep]:
                        del table[key]
                        for side in _HOOK_SIDE_DICTS.get(d, ()):
                            getattr(m, side, {}).pop(key, None)
            if m._modules != children:
                m._modules.clear()
                m._modules.update(children)
            m.training = training
            if forward is _MISSING:
                m.__dict__.pop("forward", None)
            else:
                m.__dict__["forward"] = forward
            if full_flag is not None:
                m._is_full_backward_hook = full_flag
        for d, keep in zip(global_dicts, global_keys):
            for key in [k for k in d if k not in keep]:
                del d[key]
        for p, grad, requires_grad in params:
            p.requires_grad_(requires_grad)
            p.grad = grad


# --------------------------------------------------------------------------- the verb


def _as_tensor(x, device) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    return x.detach().to(device=device, dtype=torch.float32)


def _to_unit(raw: torch.Tensor, sign: str) -> torch.Tensor:
    """Maps in [0, 1] from raw maps [N, H, W]: rectify as ``sign`` says, divide by the image max.

    ``positive``: max(raw, 0); ``absolute``: |raw|; ``negative``: max(-raw, 0); these keep 0 at
    0. ``minmax``: (raw - min) / (max - min). ``all``: 0.5 + raw / (2 max|raw|), so 0.5 is
    neutral. An all-zero map stays all zero.
    """
    flat = raw.flatten(1)
    if sign == "minmax":
        lo = flat.amin(1, keepdim=True)
        span = flat.amax(1, keepdim=True) - lo
        out = torch.where(span > 0, (flat - lo) / span.clamp_min(1e-30), torch.zeros_like(flat))
    elif sign == "all":
        scale = flat.abs().amax(1, keepdim=True)
        out = torch.where(scale > 0, 0.5 + flat / (2 * scale.clamp_min(1e-30)), torch.full_like(flat, 0.5))
    else:
        v = {"positive": flat.clamp_min(0), "absolute": flat.abs(), "negative": (-flat).clamp_min(0)}[sign]
        top = v.amax(1, keepdim=True)
        out = torch.where(top > 0, v / top.clamp_min(1e-30), torch.zeros_like(v))
    return out.clamp_(0, 1).reshape(raw.shape)


def explain(method: str, model: nn.Module, images, targets=None, *, arch: str | None = None,
            sign: str | None = None, seed: int = 0, **options) -> Explanation:
    """Explain ``model``'s decision on ``images`` with ``method``.

    Parameters
    ----------
    method : str
        A registry key; see :func:`list_methods` and :func:`compatibility_matrix`.
    model : nn.Module
        In eval mode (a model in training mode is refused, never switched).
    images : Tensor float [N, C, H, W]
        Normalised images, on any device (moved to the model's).
    targets : None, int or sequence of N ints
        Classes to explain; ``None`` explains the predicted class.
    arch : str, optional
        One of the zoo's ``ARCHS``; inferred from the model's class when omitted.
    sign : {"positive", "absolute", "negative", "all", "minmax"}, optional
        How raw maps become ``maps`` (see :func:`_to_unit`); default: the method's own
        (CAM family: the libraries' ReLU then per-image min-max; attribution methods:
        ``"absolute"``; XRAI: ``"minmax"``).
    seed : int
        Seeds the noise of stochastic methods (SmoothGrad, SS-CAM, ...) inside a forked RNG,
        so results repeat and the global random state is untouched.
    **options
        Method options (e.g. ``layer=`` for the CAM family, ``baseline=`` for Integrated
        Gradients); :attr:`MethodInfo.options` lists them.

    Returns
    -------
    Explanation
        ``maps`` float32 [N, H, W] in [0, 1], ``raw``, ``targets``, ``seconds`` ...

    Example
    -------
    >>> result = explain("integrated_gradients", model, images, targets=[1, 0], baseline="blur")
    """
    info = _check_method(method)
    _check_model(model)
    images = _check_images(images, model)
    inferred = infer_arch(model)
    if arch is not None:
        from ..models.zoo import ARCHS

        check_choice("arch", arch, ARCHS)
        if inferred is not None and arch != inferred:
            raise ValueError(f"arch={arch!r} does not match the model, which is built like {inferred!r}")
    arch = arch or inferred
    if arch is not None and not info.supports(arch):
        raise UnsupportedArchitectureError(f"method {method!r} does not support arch {arch!r}: {info.reason(arch)}")
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(map(repr, unknown))} for method {method!r}; "
                         f"valid options: {', '.join(info.options) or '(none)'}")
    sign = info.sign if sign is None else sign
    check_choice("sign", sign, SIGNS)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    call = Call(model, images, _check_targets(targets, len(images), model, images), arch)

    devices = [images.device] if images.device.type == "cuda" else []
    start = time.perf_counter()
    with torch.random.fork_rng(devices=devices), hook_guard(model):
        torch.manual_seed(int(seed))
        result = info.func(call, **options)
    raw = _as_tensor(result.raw, images.device)
    if raw.shape[-2:] != images.shape[-2:]:
        raw = torch.nn.functional.interpolate(raw[:, None], size=call.size, mode="bilinear", align_corners=False)[:, 0]
    if result.maps is not None and sign == info.sign:
        maps = _as_tensor(result.maps, images.device).clamp_(0, 1)
    else:
        maps = _to_unit(raw, sign)
    seconds = time.perf_counter() - start
    chosen = result.targets if result.targets is not None else call.require_targets()
    return Explanation(
        maps=maps.cpu().numpy().astype(np.float32, copy=False),
        raw=raw.cpu().numpy().astype(np.float32, copy=False),
        method=info.name, family=info.family,
        targets=np.asarray(torch.as_tensor(chosen).cpu(), dtype=np.int64),
        seconds=seconds, arch=arch, options=dict(options), extras=result.extras,
    )
