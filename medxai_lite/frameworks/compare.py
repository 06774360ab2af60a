r"""The same method through several libraries, brought to one post-processing and compared.

Two methods are covered, each by every library the book has that implements it:

- **Grad-CAM** (Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391) through
  pytorch-grad-cam (``pytorch_grad_cam.GradCAM``), captum (``captum.attr.LayerGradCam``) and
  torchcam (``torchcam.methods.GradCAM``). All three compute, on the grid of layer :math:`A`,

  .. math:: L^c = \sum_k w^c_k A^k, \qquad w^c_k = \frac{1}{Z}\sum_{ij}\frac{\partial y^c}{\partial A^k_{ij}},

  and differ in what they hand back (:data:`LIBRARY_DEFAULTS`). The common post-processing is
  ReLU on the grid, upsampling to the input (bilinear, ``align_corners=False``, the resize all
  three use or document; or, with ``align=True``, the package's receptive-field-centred
  :func:`medxai_lite.explain.cam.upsample_registered`, still bilinear, so that ``align`` changes
  only where the cells sit; ``explain()`` also interpolates bicubically), then min-max per map.
- **Integrated Gradients** (Sundararajan et al. 2017, https://arxiv.org/abs/1703.01365) through
  captum (``captum.attr.IntegratedGradients``) and zennit (``zennit.attribution.IntegratedGradients``):

  .. math:: \mathrm{IG}_i = (x_i - x'_i)\sum_{m=1}^{M} s_m\,
            \frac{\partial y^c}{\partial x_i}\Big|_{x' + \alpha_m (x - x')}

  with the rule's points :math:`\alpha_m` and weights :math:`s_m`. zennit uses the right Riemann
  sum (:math:`\alpha_m = m/M`, :math:`s_m = 1/M`); captum defaults to Gauss-Legendre and offers
  ``riemann_right`` (the same sum as zennit), ``riemann_left``, ``riemann_middle`` and
  ``riemann_trapezoid``. The map is the book's IG map: the channel sum :math:`\sum_c \mathrm{IG}_{cij}`,
  its absolute value, divided by its maximum. Completeness, :math:`\sum_i \mathrm{IG}_i = y^c(x) - y^c(x')`,
  is checked per image and library.

:func:`compare_libraries` returns the maps per library and a timing per library (median of
``repeats`` calls, ``time.perf_counter``, the libraries interleaved so that a change in machine
load hits all of them alike); :func:`agreement` gives the pairwise Spearman rank correlation of
the maps per image and their largest absolute difference.

Example
-------
>>> result = compare_libraries("gradcam", model, images, targets)          # doctest: +SKIP
>>> agreement(result).groupby(["library_a", "library_b"]).spearman.min()    # doctest: +SKIP
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from .._utils import check_choice, check_eval_model, check_images, check_positive_int, check_targets

__all__ = ["LIBRARIES", "CAPTUM_RULES", "LIBRARY_DEFAULTS", "LibraryComparison", "compare_libraries", "agreement",
           "summarise_agreement", "rule_weights"]

#: The libraries each comparable method runs through (the first is the registry's own).
LIBRARIES: Mapping[str, tuple[str, ...]] = {
    "gradcam": ("pytorch-grad-cam", "captum", "torchcam"),
    "integrated_gradients": ("captum", "zennit"),
}
#: captum's integral approximations (``IntegratedGradients.attribute(method=...)``).
CAPTUM_RULES = ("gausslegendre", "riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid")

#: The options of each method, with their defaults.
_OPTIONS = {
    "gradcam": {"layer": None, "align": False},
    "integrated_gradients": {"baseline": "zero", "n_steps": 32, "captum_method": "riemann_right",
                             "internal_batch_size": 64},
}

#: What each library returns with its defaults, and what :func:`compare_libraries` aligns
#: (read from the sources of pytorch-grad-cam 1.5.7, captum 0.9.0, torchcam 0.5.0, zennit 0.5.1).
LIBRARY_DEFAULTS: Mapping[tuple[str, str], Mapping[str, str]] = {
    ("gradcam", "pytorch-grad-cam"): {
        "call": "GradCAM(model, [layer])(input_tensor=x, targets=[ClassifierOutputTarget(c), ...])",
        "returns": "NumPy [N, H, W] in [0, 1]: ReLU on the grid, min-max, cv2.resize (bilinear) to the "
                   "input, min-max again (mean over target layers)",
        "aligned": "nothing: ReLU, bilinear, min-max is already its pipeline (min-max commutes with a "
                   "linear resize)",
        "side effects": "its constructor calls model.eval(); hooks stay until activations_and_grads.release()",
    },
    ("gradcam", "captum"): {
        "call": "LayerGradCam(model, layer).attribute(x, target=targets)",
        "returns": "tensor [N, 1, h, w] on the layer's grid, signed (relu_attributions=False); "
                   "LayerAttribution.interpolate upsamples with mode 'nearest' by default",
        "aligned": "ReLU on the grid, LayerAttribution.interpolate(..., interpolate_mode='bilinear'), min-max",
        "side effects": "hooks removed after each call",
    },
    ("gradcam", "torchcam"): {
        "call": "with GradCAM(model, layer_name) as cam: cam(class_idx=targets, scores=model(x))",
        "returns": "list (one per layer) of tensors [N, h, w] on the grid, ReLU then min-max "
                   "(normalized=True); no upsampling (its overlay_mask resizes a PIL image, bicubic)",
        "aligned": "bilinear upsampling (F.interpolate, align_corners=False), min-max after upsampling",
        "side effects": "hooks removed on leaving the with-block",
    },
    ("integrated_gradients", "captum"): {
        "call": "IntegratedGradients(model).attribute(x, baselines=x0, target=targets, n_steps=50, "
                "method='gausslegendre')",
        "returns": "tensor [N, C, H, W] (and the completeness error with return_convergence_delta=True); "
                   "all N x n_steps path points in one batch unless internal_batch_size is set",
        "aligned": "n_steps and the rule (method='riemann_right' is zennit's sum), baseline, channel sum, "
                   "|.|, divided by the maximum",
        "side effects": "none",
    },
    ("integrated_gradients", "zennit"): {
        "call": "IntegratedGradients(model, baseline_fn=..., n_iter=20)(x, one_hot(targets))",
        "returns": "(output, tensor [N, C, H, W]); right Riemann sum over alpha = 1/n ... 1, one "
                   "forward and backward pass of the batch per step; without attr_output the output "
                   "itself is back-propagated (every class, weighted by its own score), not the target "
                   "class alone",
        "aligned": "baseline_fn returning the same baseline, n_iter = n_steps, a one-hot target as "
                   "attr_output, channel sum, |.|, divided by the maximum",
        "side effects": "none",
    },
}


def rule_weights(captum_method: str, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    r"""``(alphas, weights)`` of captum's rule ``captum_method`` with ``n_steps`` points.

    For a model linear in its input the gradient is the same at every :math:`\alpha`, so
    :math:`\sum_i \mathrm{IG}_i = \big(\sum_m s_m\big)\,(y^c(x) - y^c(x'))`: a rule is exact on
    such a model exactly when its weights sum to 1.

    >>> float(rule_weights("riemann_right", 4)[1].sum())
    1.0
    """
    from captum.attr._utils.approximation_methods import approximation_parameters

    check_choice("captum_method", captum_method, CAPTUM_RULES)
    n = check_positive_int("n_steps", n_steps, minimum=2)
    step_sizes, alphas = approximation_parameters(captum_method)
    return np.asarray(alphas(n), dtype=np.float64), np.asarray(step_sizes(n), dtype=np.float64)


@dataclass
class LibraryComparison:
    """The result of :func:`compare_libraries`.

    Attributes
    ----------
    method : str
    libraries : tuple of str
    maps : dict library -> np.ndarray float32 [N, H, W] in [0, 1]
        After the common post-processing (the same for every library).
    raw : dict library -> np.ndarray
        What the library computed before the common post-processing: Grad-CAM, the map on the
        layer's grid [N, h, w] exactly as the library returns it (captum: signed; torchcam:
        rectified and min-max scaled; pytorch-grad-cam: the weighted sum before its ReLU);
        Integrated Gradients, the attributions [N, C, H, W].
    native : dict library -> np.ndarray
        The library's own final output with its defaults where it differs from ``raw``
        (pytorch-grad-cam's resized map [N, H, W]); otherwise the same array as ``raw``.
    seconds : dict library -> float
        Median wall time of one call on the whole batch (library call and post-processing).
    times : dict library -> list of float
        Every timed call.
    targets : np.ndarray int64 [N]
    options : dict
        The options the comparison ran with.
    completeness : pandas.DataFrame or None
        Integrated Gradients only: per library and image, ``sum of attributions``,
        ``score difference`` :math:`y^c(x) - y^c(x')`, ``error`` (their difference) and
        ``relative error`` (divided by ``|score difference|``).
    """

    method: str
    libraries: tuple[str, ...]
    maps: dict
    raw: dict
    native: dict
    seconds: dict
    times: dict
    targets: np.ndarray
    options: dict = field(default_factory=dict)
    completeness: object = None

    def timing(self):
        """One row per library: median seconds per call and per image, and the number of calls timed."""
        import pandas as pd

        n = len(self.targets)
        return pd.DataFrame([{"library": lib, "seconds per call (median)": self.seconds[lib],
                              "seconds per image": self.seconds[lib] / n, "calls timed": len(self.times[lib])}
                             for lib in self.libraries]).set_index("library")

    def defaults(self):
        """What each library returns by default (from :data:`LIBRARY_DEFAULTS`), with the shape and
        value range measured in this run and the installed version."""
        import pandas as pd

        from .table import package_version

        dist = {"pytorch-grad-cam": "grad-cam"}
        rows = []
        for lib in self.libraries:
            out = np.asarray(self.native[lib])
            rows.append({"library": lib, "version": package_version(dist.get(lib, lib)),
                         "returns": LIBRARY_DEFAULTS[(self.method, lib)]["returns"],
                         "shape returned": "x".join(map(str, out.shape)),
                         "range returned": f"[{out.min():.3g}, {out.max():.3g}]",
                         "aligned here": LIBRARY_DEFAULTS[(self.method, lib)]["aligned"]})
        return pd.DataFrame(rows).set_index("library")


# --------------------------------------------------------------------------- Grad-CAM


def _gradcam_pytorch_grad_cam(model, x, targets, layer, layer_name):
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = pytorch_grad_cam.GradCAM(model, [layer])
    grids = []
    library_method = cam.get_cam_image

    def recording(*args, **kwargs):   # instance attribute: the library's class is untouched
        out = library_method(*args, **kwargs)
        grids.append(out)
        return out

    cam.get_cam_image = recording
    try:
        native = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    finally:
        cam.activations_and_grads.release()
    return torch.as_tensor(np.asarray(grids[0]), dtype=torch.float32), np.asarray(native, dtype=np.float32)


def _gradcam_captum(model, x, targets, layer, layer_name):
    from captum.attr import LayerGradCam

    grid = LayerGradCam(model, layer).attribute(x, target=targets)      # [N, 1, h, w], signed
    return grid.detach()[:, 0].float(), None


def _gradcam_torchcam(model, x, targets, layer, layer_name):
    from torchcam.methods import GradCAM

    with GradCAM(model, target_layer=layer_name) as extractor:
        scores = model(x)
        grids = extractor(class_idx=[int(t) for t in targets], scores=scores)   # ReLU, min-max per map
    return grids[0].detach().float(), None


_GRADCAM = {"pytorch-grad-cam": _gradcam_pytorch_grad_cam, "captum": _gradcam_captum,
            "torchcam": _gradcam_torchcam}


def _run_gradcam(lib, model, images, targets, arch, *, layer, align):
    from ..explain.cam import upsample_grid
    from ..explain.registry import Call, hook_guard, to_unit

    call = Call(model, images, targets, arch)
    module = call.layers(layer)
    if len(module) != 1:
        raise ValueError(f"layer must name one module for this comparison; got {len(module)}")
    module = module[0]
    with hook_guard(model):
        grid, native = _GRADCAM[lib](model, call.inputs(True), targets, module, call.layer_name(module))
    # ReLU on the grid, as all three do; bilinear either way, so that align moves the cells and nothing else
    up = upsample_grid(grid.clamp_min(0), call.size, arch, align, mode="bilinear")
    maps = to_unit(up, "positive", "minmax")
    raw = grid.cpu().numpy()
    return maps.cpu().numpy().astype(np.float32), raw, (raw if native is None else native), None


# --------------------------------------------------------------------------- Integrated Gradients


def _ig_captum(model, x, targets, baseline, n_steps, captum_method, internal_batch_size):
    from captum.attr import IntegratedGradients

    from ..explain.captum_tools import quiet_captum

    with quiet_captum():
        return IntegratedGradients(model).attribute(x, baselines=baseline, target=targets, n_steps=n_steps,
                                                    method=captum_method, internal_batch_size=internal_batch_size)


def _ig_zennit(model, x, targets, baseline, n_steps, captum_method, internal_batch_size):
    from zennit.attribution import IntegratedGradients

    attributor = IntegratedGradients(model, baseline_fn=lambda _: baseline, n_iter=n_steps)
    with torch.no_grad():
        n_classes = model(x[:1]).shape[1]
    _, attributions = attributor(x.detach(), F.one_hot(targets, n_classes).to(x.dtype))
    return attributions


_IG = {"captum": _ig_captum, "zennit": _ig_zennit}


def _run_ig(lib, model, images, targets, arch, *, baseline, n_steps, captum_method, internal_batch_size):
    from ..explain.registry import hook_guard, to_unit

    with hook_guard(model):
        attributions = _IG[lib](model, images.detach(), targets, baseline, n_steps, captum_method,
                                internal_batch_size).detach().float()
    maps = to_unit(attributions.sum(1), "absolute", "max")
    raw = attributions.cpu().numpy()
    return maps.cpu().numpy().astype(np.float32), raw, raw, attributions.sum((1, 2, 3)).cpu().numpy()


# --------------------------------------------------------------------------- the comparison


def _check_options(method: str, options: dict) -> dict:
    allowed = _OPTIONS[method]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(map(repr, unknown))} for method {method!r}; "
                         f"valid options: {', '.join(allowed)}")
    return {**allowed, **options}


def compare_libraries(method: str, model, images, targets=None, *, libraries=None, repeats: int = 3,
                      warmup: bool = True, **options) -> LibraryComparison:
    """Run ``method`` on the same model, images and targets through each library, post-process the
    outputs the same way, and time each library.

    Parameters
    ----------
    method : {"gradcam", "integrated_gradients"}
    model : nn.Module in eval mode (never switched; hooks, ``.grad`` and ``requires_grad`` are
        restored after every call, also after an error)
    images : Tensor float [N, C, H, W], normalised
    targets : None, int or sequence of N ints
        Classes to explain; ``None`` explains the predicted class.
    libraries : sequence of str, optional
        A subset of ``LIBRARIES[method]`` (default: all of them).
    repeats : int >= 1
        Timed calls per library; the libraries take turns, and the median is reported.
    warmup : bool
        One untimed call per library first (imports, first-call allocations).
    **options
        Grad-CAM: ``layer`` (module or dotted name; default: the zoo's CAM layer,
        :func:`medxai_lite.models.target_layer`), ``align`` (``False``: bilinear upsampling as
        the libraries do; ``True``: the package's receptive-field-centred upsampling).
        Integrated Gradients: ``baseline`` (``"zero"`` = zeros in the normalised input space, any
        name of :mod:`medxai_lite.baselines`, or a tensor), ``n_steps`` (>= 2),
        ``captum_method`` (one of :data:`CAPTUM_RULES`; default ``"riemann_right"``, zennit's
        sum), ``internal_batch_size`` (captum's path points per batch).

    Returns
    -------
    LibraryComparison
    """
    check_choice("method", method, LIBRARIES)
    options = _check_options(method, options)
    check_eval_model(model, "library comparisons")
    images = check_images(images)
    param = next(model.parameters(), None)
    if param is not None:
        images = images.to(device=param.device, dtype=param.dtype)
    with torch.no_grad():
        scores = model(images)
    if targets is None:
        targets = scores.argmax(1)
    targets = check_targets(targets, len(images), scores.shape[1]).to(images.device)
    if libraries is None:
        libraries = LIBRARIES[method]
    if isinstance(libraries, str) or not len(libraries):
        raise ValueError(f"libraries must be a non-empty sequence of names from {list(LIBRARIES[method])}; "
                         f"got {libraries!r}")
    for lib in libraries:
        check_choice("libraries", lib, LIBRARIES[method])
    libraries = tuple(libraries)
    if len(set(libraries)) != len(libraries):
        raise ValueError(f"libraries must not repeat a name; got {list(libraries)}")
    repeats = check_positive_int("repeats", repeats)
    from ..models.zoo import infer_arch

    arch = infer_arch(model)
    if method == "gradcam":
        if not isinstance(options["align"], bool):
            raise ValueError(f"align must be True or False; got {options['align']!r}")
        if options["align"] and arch is None:
            raise ValueError("align=True needs a model of the zoo (medxai_lite.models.get_model): the receptive-"
                             "field centres are known only for those; use align=False")
        run = _run_gradcam
        kwargs = {"layer": options["layer"], "align": options["align"]}
    else:
        from ..baselines import make_baseline

        n_steps = check_positive_int("n_steps", options["n_steps"], minimum=2)
        check_choice("captum_method", options["captum_method"], CAPTUM_RULES)
        batch = options["internal_batch_size"]
        if batch is not None:
            batch = check_positive_int("internal_batch_size", batch)
        baseline = make_baseline(images, options["baseline"]).to(images)
        if baseline.shape != images.shape:
            raise ValueError(f"baseline must have the images' shape {list(images.shape)}; got {list(baseline.shape)}")
        run = _run_ig
        kwargs = {"baseline": baseline, "n_steps": n_steps, "captum_method": options["captum_method"],
                  "internal_batch_size": batch}

    outputs, times = {}, {lib: [] for lib in libraries}
    if warmup:
        for lib in libraries:
            run(lib, model, images, targets, arch, **kwargs)
    for r in range(repeats):
        for lib in libraries:
            start = time.perf_counter()
            result = run(lib, model, images, targets, arch, **kwargs)
            times[lib].append(time.perf_counter() - start)
            if r == 0:
                outputs[lib] = result

    completeness = None
    if method == "integrated_gradients":
        completeness = _completeness(model, images, targets, kwargs["baseline"], {k: v[3] for k, v in outputs.items()})
    return LibraryComparison(
        method=method, libraries=libraries, maps={k: v[0] for k, v in outputs.items()},
        raw={k: v[1] for k, v in outputs.items()}, native={k: v[2] for k, v in outputs.items()},
        seconds={k: statistics.median(v) for k, v in times.items()}, times=times,
        targets=targets.cpu().numpy().astype(np.int64),
        options={k: v for k, v in options.items() if not isinstance(v, torch.Tensor)}, completeness=completeness)


def _completeness(model, images, targets, baseline, sums: dict):
    import pandas as pd

    with torch.no_grad():
        rows = torch.arange(len(images), device=images.device)
        diff = (model(images)[rows, targets] - model(baseline)[rows, targets]).double().cpu().numpy()
    out = []
    for lib, total in sums.items():
        for i, (s, d) in enumerate(zip(np.asarray(total, dtype=np.float64), diff)):
            out.append({"library": lib, "image": i, "sum of attributions": s, "score difference": d,
                        "error": s - d, "relative error": abs(s - d) / abs(d) if d != 0 else np.nan})
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- agreement


def agreement(maps_by_library):
    """Pairwise agreement of the maps of several libraries, per image.

    Parameters
    ----------
    maps_by_library : LibraryComparison or dict name -> maps [N, H, W]
        At least two entries over the same images.

    Returns
    -------
    pandas.DataFrame with columns ``library_a``, ``library_b``, ``image``, ``spearman`` (rank
    correlation over the pixels, :func:`medxai_lite.metrics.rank_correlation`; NaN where a map
    is constant) and ``max abs diff`` (largest pixel difference).

    Example
    -------
    >>> m = np.random.default_rng(0).random((2, 4, 4))
    >>> agreement({"a": m, "b": m})[["spearman", "max abs diff"]].values.tolist()
    [[1.0, 0.0], [1.0, 0.0]]
    """
    import pandas as pd

    from ..metrics.repeatability import rank_correlation

    if isinstance(maps_by_library, LibraryComparison):
        maps_by_library = maps_by_library.maps
    if not isinstance(maps_by_library, Mapping) or len(maps_by_library) < 2:
        raise ValueError("maps_by_library must be a LibraryComparison or a dict of at least two "
                         f"name -> maps [N, H, W]; got {type(maps_by_library).__name__}"
                         + (f" with {len(maps_by_library)} entry" if isinstance(maps_by_library, Mapping) else ""))
    arrays = {}
    for name, maps in maps_by_library.items():
        maps = np.asarray(getattr(maps, "maps", maps), dtype=np.float64)
        if maps.ndim != 3:
            raise ValueError(f"maps_by_library[{name!r}] must have shape [N, H, W]; got {list(maps.shape)}")
        arrays[name] = maps
    shapes = {name: m.shape for name, m in arrays.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"maps_by_library must hold maps of one shape; got {shapes}")
    names = list(arrays)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            rho = rank_correlation(arrays[a], arrays[b])
            diff = np.abs(arrays[a] - arrays[b]).reshape(len(rho), -1).max(1)
            rows += [{"library_a": a, "library_b": b, "image": k, "spearman": float(r), "max abs diff": float(d)}
                     for k, (r, d) in enumerate(zip(rho, diff))]
    return pd.DataFrame(rows)


def summarise_agreement(table):
    """Per pair of libraries: the mean and the smallest rank correlation and the largest absolute
    difference over the images of one or more :func:`agreement` tables (extra columns such as
    ``dataset`` are pooled over)."""
    if not {"library_a", "library_b", "spearman", "max abs diff"} <= set(getattr(table, "columns", ())):
        raise ValueError("table must be a DataFrame returned by agreement()")
    grouped = table.groupby(["library_a", "library_b"], sort=False)
    out = grouped.agg(**{"mean Spearman": ("spearman", "mean"), "min Spearman": ("spearman", "min"),
                         "max abs diff": ("max abs diff", "max"), "maps": ("spearman", "size")})
    return out
