"""The explanation registry and the one verb every chapter uses: ``explain``.

Each method is a small *adapter* (a few lines around a library call) registered with
``@register(name, family=..., library=..., ...)``. ``explain(method, model, images, targets)``
validates the input, works out the architecture, refuses what the registry says cannot work,
runs the adapter inside a guard that removes every hook and restores every parameter's
``.grad`` / ``requires_grad`` (also after an error), and returns an :class:`Explanation`.

What a method returns is its *output kind* (:data:`OUTPUT_KINDS`), each with one contract that
``explain`` checks on every call: ``"map"`` (``maps`` float32 [N, H, W] in [0, 1] at input
resolution: every pixel-attribution method), ``"concepts"`` (a score per image and named
concept), ``"examples"`` (indices of reference items per image, nearest first) and ``"text"``
(one string per image).

Extending the registry
----------------------
A new family is one new module whose adapters are decorated with :func:`register` and return
an :class:`AdapterResult`, plus one import line in ``medxai_lite/explain/__init__.py``. The
captum plumbing that gradient- and perturbation-style adapters share is in
:mod:`medxai_lite.explain.captum_tools`; reference images are in :mod:`medxai_lite.baselines`;
what each architecture supports is in :data:`medxai_lite.models.ARCH_SPECS`.

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

from .._utils import check_choice, check_eval_model, check_images, check_targets, minmax_scale
from ..models.zoo import infer_arch

__all__ = [
    "AdapterResult",
    "Call",
    "Explanation",
    "MethodInfo",
    "METHODS",
    "OUTPUT_KINDS",
    "OutputKind",
    "PRESETS",
    "SIGNS",
    "SCALES",
    "unregister",
    "UnsupportedArchitectureError",
    "register",
    "explain",
    "list_methods",
    "methods_table",
    "short_reference",
    "compatibility_matrix",
    "infer_arch",
    "hook_guard",
    "to_unit",
]

#: Cost classes, from one or two passes ("fast") to one pass per channel or sample ("slow").
COSTS = ("fast", "medium", "slow")
#: Which part of a raw map counts as relevance (see :func:`to_unit`): its positive part, its
#: negative part, its magnitude, or all of it (signed).
SIGNS = ("positive", "absolute", "negative", "all")
#: How the rectified map is brought into [0, 1] (see :func:`to_unit`): divided by its maximum
#: (0 stays 0; a signed map is centred on 0.5) or min-max scaled.
SCALES = ("max", "minmax")
#: Named option sets every method carries: ``"quick"`` (the cheapest setting that still shows the
#: method's behaviour: tests, the benchmark's extended grid) and ``"book"`` (the chapters' setting).
PRESETS = ("quick", "book")


class UnsupportedArchitectureError(ValueError):
    """Raised when the registry records that a method does not work on an architecture."""


@dataclass(frozen=True)
class MethodInfo:
    """One registry entry. ``unsupported`` maps an architecture to the reason it is refused
    (the explicit ``unsupported=`` of :func:`register` plus every architecture whose
    :class:`~medxai_lite.models.ArchSpec` lacks a capability named in ``requires``)."""

    name: str
    title: str
    family: str
    library: str
    needs_gradients: bool
    cost: str
    paper: str
    func: Callable[..., "AdapterResult"]
    sign: str = "positive"
    unsupported: Mapping[str, str] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    output: str = "map"
    scale: str = "max"
    requires: Mapping[str, str] = field(default_factory=dict)
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

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
    output: str = "map",
    sign: str = "positive",
    scale: str = "max",
    requires: Mapping[str, str] | None = None,
    unsupported: Mapping[str, str] | None = None,
    presets: Mapping[str, Mapping[str, Any]] | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator adding an adapter ``func(call, **options) -> AdapterResult`` to the registry.

    The adapter's keyword parameters (after ``call``) are the method's options; ``explain``
    rejects any other option by name.

    Parameters
    ----------
    family : str
        One of the survey's families, :data:`medxai_lite.taxonomy.FAMILIES`.
    output : str
        The output kind, a key of :data:`OUTPUT_KINDS` (default ``"map"``).
    sign, scale : str
        How a ``"map"`` method's raw maps become ``maps`` (:data:`SIGNS`, :data:`SCALES`).
    requires : dict, optional
        ``{capability: consequence}``: the method needs an architecture with that capability
        (:data:`medxai_lite.models.CAPABILITIES`); each zoo architecture that lacks it is
        refused with the spec's explanation and ``consequence``.
    unsupported : dict, optional
        ``{arch: reason}`` for refusals no capability describes (a measured failure).
    presets : dict, optional
        ``{"quick": {...}, "book": {...}}`` option sets (:data:`PRESETS`). ``"book"`` holds the
        knobs ``"quick"`` turns, at the adapter's defaults unless given; a missing preset adds
        nothing to the defaults.

    Example
    -------
    >>> @register("my_method", title="My method", family="Gradient-based", library="captum",
    ...           needs_gradients=True, cost="fast", paper="Doe 2024", presets={"quick": {"steps": 2}})
    ... def _my_method(call, steps: int = 8):
    ...     ...
    """
    from ..models.zoo import ARCH_SPECS, CAPABILITIES
    from ..taxonomy import FAMILIES

    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    check_choice("family", family, [f for _, f in FAMILIES])
    check_choice("output", output, OUTPUT_KINDS)
    check_choice("cost", cost, COSTS)
    check_choice("sign", sign, SIGNS)
    check_choice("scale", scale, SCALES)
    for capability in requires or {}:
        check_choice("requires", capability, CAPABILITIES)
    for arch in unsupported or {}:
        check_choice("unsupported", arch, ARCH_SPECS)
    for preset in presets or {}:
        check_choice("presets", preset, PRESETS)
    refused = {arch: f"{spec.title}: {spec.why_lacks(cap)}, so {why}"
               for arch, spec in ARCH_SPECS.items()
               for cap, why in reversed(list((requires or {}).items())) if not spec.has(cap)}
    refused.update(unsupported or {})

    def decorate(func: Callable) -> Callable:
        known = _REGISTRY.get(name)
        same = known is not None and known.func.__qualname__ == func.__qualname__ \
            and known.func.__module__ == func.__module__
        if known is not None and not same:
            raise ValueError(f"method {name!r} is already registered by {known.func.__module__}")
        # (the same adapter registering again is a module reload, e.g. autoreload in a notebook)
        params = list(inspect.signature(func).parameters.values())[1:]
        options = tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD)
        sets = {p: dict((presets or {}).get(p, {})) for p in PRESETS}
        # "book" names the same knobs as "quick", at the adapter's defaults unless given: the two
        # presets read side by side as the cost trade-off
        defaults = {p.name: p.default for p in params if p.default is not p.empty}
        for key in sets["quick"]:
            if key in defaults:
                sets["book"].setdefault(key, defaults[key])
        for preset, values in sets.items():
            wrong = sorted(set(values) - set(options))
            if wrong:
                raise ValueError(f"presets[{preset!r}] of method {name!r} names unknown option(s) "
                                 f"{', '.join(map(repr, wrong))}; valid options: {', '.join(options) or '(none)'}")
        _REGISTRY[name] = MethodInfo(
            name=name, title=title, family=family, library=library,
            needs_gradients=needs_gradients, cost=cost, paper=paper, func=func, sign=sign,
            unsupported=types.MappingProxyType(refused), options=options, output=output, scale=scale,
            requires=types.MappingProxyType(dict(requires or {})),
            presets=types.MappingProxyType({p: types.MappingProxyType(v) for p, v in sets.items()}),
        )
        return func

    return decorate


def unregister(name: str) -> MethodInfo:
    """Remove ``name`` from the registry and return its entry (for experiments and tests)."""
    info = _check_method(name)
    del _REGISTRY[name]
    return info


def list_methods(family: str | None = None) -> list[str]:
    """Names of the registered methods, in registration order, optionally of one ``family``.

    >>> list_methods("CAM-based")[:3]
    ['cam', 'gradcam', 'gradcampp']
    """
    if family is not None:
        check_choice("family", family, sorted({m.family for m in _REGISTRY.values()}))
    return [n for n, m in _REGISTRY.items() if family is None or m.family == family]


def short_reference(paper: str) -> str:
    """The author-and-year part of a registry ``paper`` string, for tables: each ``;``-separated
    reference cut after its first year; references without a year are left out, unless none has
    one (then the text before the first ``:`` is kept).

    >>> short_reference("Zhou et al. 2016, Learning Deep Features for Discriminative Localization (CVPR)")
    'Zhou et al. 2016'
    """
    import re

    if not isinstance(paper, str):
        raise ValueError(f"paper must be a string; got {type(paper).__name__}")
    parts = [p.strip() for p in paper.split(";") if p.strip()]
    years = [re.search(r"\b(?:19|20)\d{2}[a-z]?\b", p) for p in parts]
    dated = [p[:m.end()] for p, m in zip(parts, years) if m]
    return "; ".join(dated) if dated else (parts[0].split(":")[0].strip() if parts else "")


def methods_table(family: str | None = None):
    """The registry as a pandas DataFrame (one row per method). ``paper`` is the full reference
    string, ``ref`` its author-and-year part (:func:`short_reference`) for tables that must fit
    the page; the chapters cite the full reference from their bibliography."""
    import pandas as pd

    rows = [
        {"method": m.name, "title": m.title, "family": m.family, "library": m.library,
         "output": m.output, "needs_gradients": m.needs_gradients, "cost": m.cost, "paper": m.paper,
         "ref": short_reference(m.paper), "options": ", ".join(m.options)}
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
    maps : np.ndarray, float32 [N, H, W], or None
        ``"map"`` methods: relevance in [0, 1] at input resolution, one map per image
        (1 = most relevant), made from ``raw`` as ``sign`` and ``scale`` say. ``None`` for the
        other output kinds.
    raw : np.ndarray, float32 [N, H, W], or None
        The same maps before rectification and scaling (signed where the method is signed, e.g.
        the channel sum of Integrated Gradients, DeepLIFT or LRP relevance, whose total is the
        explained logit difference; the un-rectified weighted sum of feature maps for CAMs).
    method, family : str
    targets : np.ndarray, int64 [N]
        The explained class of each image (the predicted class when ``targets=None``).
    seconds : float
        Wall-clock time of the method itself (validation excluded).
    arch : str or None
        The architecture the call was checked against.
    options : dict
        The options the method ran with (a preset's, then those passed).
    extras : dict
        Method-specific outputs, e.g. ``"attributions"`` (float32 [N, C, H, W]) for the
        gradient family or ``"convergence_delta"`` for Integrated Gradients and DeepLIFT.
    kind : str
        The output kind (:data:`OUTPUT_KINDS`).
    value : object
        The checked output of a non-map kind (see :data:`OUTPUT_KINDS`); ``None`` for maps.
    sign, scale : str or None
        How ``maps`` were made from ``raw`` (``None`` for non-map kinds).
    """

    maps: np.ndarray | None
    raw: np.ndarray | None
    method: str
    family: str
    targets: np.ndarray
    seconds: float
    arch: str | None = None
    options: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)
    kind: str = "map"
    value: Any = None
    sign: str | None = None
    scale: str | None = None

    def __len__(self) -> int:
        return len(self.targets)

    def __repr__(self) -> str:
        what = f"maps={tuple(self.maps.shape)}" if self.maps is not None else f"kind={self.kind!r}"
        return (f"Explanation(method={self.method!r}, family={self.family!r}, {what}, "
                f"arch={self.arch!r}, seconds={self.seconds:.3f})")


@dataclass
class AdapterResult:
    """What an adapter hands back to :func:`explain`.

    ``"map"`` methods set ``raw`` [N, H, W] (tensor or array; any grid, resized to the input
    bilinearly when smaller), and ``maps`` only when the library already normalised them in the
    method's own ``sign``/``scale``. Other output kinds set ``value`` (see
    :data:`OUTPUT_KINDS`). ``targets`` when the library chose the predicted class itself;
    ``extras`` for anything method-specific.
    """

    raw: Any = None
    maps: Any = None
    targets: Any = None
    extras: dict = field(default_factory=dict)
    value: Any = None


# --------------------------------------------------------------------------- output kinds


@dataclass(frozen=True)
class OutputKind:
    """An output kind: its contract in words and the function that enforces it.

    ``check(value, n)`` returns the value in canonical form or raises ``ValueError`` saying
    what the contract wants; ``explain`` calls it on every result of a method of this kind.
    """

    name: str
    contract: str
    check: Callable[[Any, int], Any]


def _contract_error(kind: str, what: str) -> ValueError:
    return ValueError(f"a {kind!r} method must return {OUTPUT_KINDS[kind].contract}; {what}")


def _check_concepts(value, n: int) -> dict:
    if not isinstance(value, Mapping) or not {"names", "scores"} <= set(value):
        raise _contract_error("concepts", f"got {type(value).__name__}")
    names = tuple(value["names"])
    scores = np.asarray(value["scores"], dtype=np.float32)
    if not names or not all(isinstance(c, str) and c for c in names) or len(set(names)) != len(names):
        raise _contract_error("concepts", f"names must be distinct non-empty strings; got {names!r}")
    if scores.shape != (n, len(names)):
        raise _contract_error("concepts", f"scores have shape {list(scores.shape)}, expected [{n}, {len(names)}]")
    if not np.isfinite(scores).all():
        raise _contract_error("concepts", "scores contain NaN or infinite values")
    return {**value, "names": names, "scores": scores}


def _check_examples(value, n: int) -> dict:
    if not isinstance(value, Mapping) or not {"indices", "distances"} <= set(value):
        raise _contract_error("examples", f"got {type(value).__name__}")
    indices = np.asarray(value["indices"])
    distances = np.asarray(value["distances"], dtype=np.float64)
    if indices.ndim != 2 or indices.shape[0] != n or indices.shape[1] < 1:
        raise _contract_error("examples", f"indices have shape {list(indices.shape)}, expected [{n}, k >= 1]")
    if not np.issubdtype(indices.dtype, np.integer) or (indices < 0).any():
        raise _contract_error("examples", "indices must be non-negative integers")
    if distances.shape != indices.shape or not np.isfinite(distances).all():
        raise _contract_error("examples", f"distances must be finite with the shape of indices, got {list(distances.shape)}")
    if (np.diff(distances, axis=1) < 0).any():
        raise _contract_error("examples", "distances must be sorted, nearest first, in every row")
    return {**value, "indices": indices.astype(np.int64), "distances": distances}


def _check_text(value, n: int) -> list:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise _contract_error("text", f"got {type(value).__name__}")
    texts = list(value)
    if len(texts) != n or not all(isinstance(t, str) for t in texts):
        raise _contract_error("text", f"got {len(texts)} items of types {sorted({type(t).__name__ for t in texts})}")
    return texts


def _check_map(value, n: int):  # maps are checked inside explain (resizing, scaling); see there
    return value


#: The output kinds a method may declare with ``register(..., output=...)``.
OUTPUT_KINDS: Mapping[str, OutputKind] = types.MappingProxyType({k.name: k for k in (
    OutputKind("map", "float32 maps [N, H, W] in [0, 1] at input resolution (raw maps [N, h, w] from the adapter)",
               _check_map),
    OutputKind("concepts", "{'names': K distinct strings, 'scores': finite float [N, K]}", _check_concepts),
    OutputKind("examples", "{'indices': int >= 0 [N, k], 'distances': finite float [N, k] sorted nearest first}",
               _check_examples),
    OutputKind("text", "a list of N strings", _check_text),
)})


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
    num_classes = _num_classes(model)
    if num_classes is None:
        with torch.no_grad():
            num_classes = model(images[:1]).shape[-1]
    return check_targets(targets, n, num_classes).to(images.device)


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


def to_unit(raw: torch.Tensor, sign: str = "positive", scale: str = "max") -> torch.Tensor:
    """Maps in [0, 1] from raw maps [N, H, W]: first rectify as ``sign`` says, then scale.

    ``sign``: ``"positive"`` keeps max(raw, 0), ``"negative"`` max(-raw, 0), ``"absolute"``
    |raw|, ``"all"`` keeps raw as it is (signed). ``scale``: ``"max"`` divides by the image's
    largest magnitude, so 0 stays 0 (a signed map becomes 0.5 + raw / (2 max|raw|): 0.5 is
    neutral); ``"minmax"`` maps the image's minimum to 0 and its maximum to 1 (the CAM
    libraries' scaling). An all-zero (or constant, for min-max) map becomes all zero (0.5 for a
    signed map under ``"max"``).
    """
    check_choice("sign", sign, SIGNS)
    check_choice("scale", scale, SCALES)
    flat = raw.flatten(1)
    v = {"positive": flat.clamp_min(0), "absolute": flat.abs(), "negative": (-flat).clamp_min(0), "all": flat}[sign]
    if scale == "minmax":
        out = minmax_scale(v)
    elif sign == "all":
        top = v.abs().amax(1, keepdim=True)
        out = torch.where(top > 0, 0.5 + v / (2 * top.clamp_min(1e-30)), torch.full_like(v, 0.5))
    else:
        top = v.amax(1, keepdim=True)
        out = torch.where(top > 0, v / top.clamp_min(1e-30), torch.zeros_like(v))
    return out.clamp_(0, 1).reshape(raw.shape)


def _to_host(obj):
    """``extras`` with every tensor on the GPU copied to the CPU (detached), in dicts, lists and
    tuples; anything else (arrays, numbers, modules) as it is. A CPU tensor is returned unchanged."""
    if isinstance(obj, torch.Tensor):
        return obj if obj.device.type == "cpu" else obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_host(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(_to_host(v) for v in obj)
    return obj


def explain(method: str, model: nn.Module, images, targets=None, *, arch: str | None = None,
            sign: str | None = None, scale: str | None = None, preset: str | None = None, seed: int = 0,
            **options) -> Explanation:
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
    sign : {"positive", "absolute", "negative", "all"}, optional
        Which part of the raw map is relevance (see :func:`to_unit`); default: the method's own
        (CAM family: ``"positive"``, the libraries' ReLU; attribution methods: ``"absolute"``;
        XRAI: ``"all"``).
    scale : {"max", "minmax"}, optional
        How the rectified map is brought into [0, 1]; default: the method's own (CAM family:
        ``"minmax"``, as pytorch-grad-cam and torchcam do; most others ``"max"``).
    preset : {"quick", "book"}, optional
        Start from the method's named option set (:attr:`MethodInfo.presets`); options passed
        explicitly win.
    seed : int
        Seeds the noise of stochastic methods (SmoothGrad, SS-CAM, ...) inside a forked RNG,
        so results repeat and the global random state is untouched.
    **options
        Method options (e.g. ``layer=`` for the CAM family, ``baseline=`` for Integrated
        Gradients); :attr:`MethodInfo.options` lists them.

    Returns
    -------
    Explanation
        ``maps`` float32 [N, H, W] in [0, 1], ``raw``, ``targets``, ``seconds`` ... for map
        methods; ``value`` in the kind's contract (:data:`OUTPUT_KINDS`) for the others.

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
    if preset is not None:
        check_choice("preset", preset, PRESETS)
        options = {**info.presets[preset], **options}
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(map(repr, unknown))} for method {method!r}; "
                         f"valid options: {', '.join(info.options) or '(none)'}")
    if info.output != "map" and (sign is not None or scale is not None):
        raise ValueError(f"sign and scale apply to map methods; {method!r} returns {info.output!r}")
    sign = info.sign if sign is None else sign
    scale = info.scale if scale is None else scale
    if sign == "minmax":
        raise ValueError("sign='minmax' is now sign='all', scale='minmax' (rectification and scaling are "
                         f"separate options); valid signs: {', '.join(SIGNS)}")
    check_choice("sign", sign, SIGNS)
    check_choice("scale", scale, SCALES)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    call = Call(model, images, _check_targets(targets, len(images), model, images), arch)

    devices = [images.device] if images.device.type == "cuda" else []
    start = time.perf_counter()
    with torch.random.fork_rng(devices=devices), hook_guard(model):
        torch.manual_seed(int(seed))
        result = info.func(call, **options)
    if not isinstance(result, AdapterResult):
        raise TypeError(f"the adapter of method {method!r} must return an AdapterResult, got {type(result).__name__}")
    common = dict(method=info.name, family=info.family, arch=arch, options=dict(options), extras=_to_host(result.extras),
                  kind=info.output)
    if info.output != "map":
        value = OUTPUT_KINDS[info.output].check(_to_host(result.value), len(images))
        seconds = time.perf_counter() - start
        chosen = result.targets if result.targets is not None else call.require_targets()
        return Explanation(maps=None, raw=None, targets=np.asarray(torch.as_tensor(chosen).cpu(), dtype=np.int64),
                           seconds=seconds, value=value, **common)
    if result.raw is None:
        raise _contract_error("map", f"method {method!r} returned no raw maps")
    raw = _as_tensor(result.raw, images.device)
    if raw.ndim != 3 or len(raw) != len(images):
        raise _contract_error("map", f"method {method!r} returned raw maps of shape {list(raw.shape)} "
                                     f"for {len(images)} images")
    if raw.shape[-2:] != images.shape[-2:]:
        raw = torch.nn.functional.interpolate(raw[:, None], size=call.size, mode="bilinear", align_corners=False)[:, 0]
    if result.maps is not None and sign == info.sign and scale == info.scale:
        maps = _as_tensor(result.maps, images.device).clamp_(0, 1)
        if maps.shape != raw.shape:
            raise _contract_error("map", f"method {method!r} returned maps of shape {list(maps.shape)}")
    else:
        maps = to_unit(raw, sign, scale)
    seconds = time.perf_counter() - start
    chosen = result.targets if result.targets is not None else call.require_targets()
    return Explanation(
        maps=maps.cpu().numpy().astype(np.float32, copy=False),
        raw=raw.cpu().numpy().astype(np.float32, copy=False),
        targets=np.asarray(torch.as_tensor(chosen).cpu(), dtype=np.int64),
        seconds=seconds, sign=sign, scale=scale, **common,
    )
