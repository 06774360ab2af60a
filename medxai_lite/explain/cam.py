r"""CAM-based methods (survey §2.1.1): a class-specific weighted sum of feature maps.

Every method here computes, for class :math:`c` and the activations :math:`A^k` of a
convolutional layer, :math:`L^c = \mathrm{ReLU}(\sum_k w_k^c A^k)` (Layer-CAM and HiRes-CAM
weight each position separately), upsamples it to the input and scales it to [0, 1]. They
differ only in the weights :math:`w_k^c`. The adapters wrap pytorch-grad-cam (``pytorch_grad_cam``)
or torchcam (``torchcam.methods``); none re-implements a method.

Options shared by all but FullGrad: ``layer`` (a module, a dotted name from
``model.named_modules()``, or a list of those; default: ``target_layer(model, arch)``, the
last convolutional block). ``raw`` holds the un-rectified weighted sum upsampled to the input.
``align`` (default ``True``) upsamples each cell to the centre of its receptive field
(:func:`upsample_registered`) rather than to the middle of its block of pixels, which is where
the libraries' bilinear resize puts it: on a ResNet that is half a cell too far right and down
(see :func:`medxai_lite.models.grid_origin`), and interpolates between the cells bicubically
(:data:`UPSAMPLE_MODE`): a bilinear interpolant peaks on a cell centre, so a lesion between two
cells that both fire could never hold the peak. ``align=False`` gives the libraries' own maps. ``extras["grid"]`` is the ``(h, w)`` grid the map
was upsampled from (``extras["grids"]``: one per layer) and ``extras["cam"]`` the first layer's
weighted sum on that grid, before any upsampling: its mean is what a GAP head averages (the
registered upsampling clamps at the border, so the mean of ``raw`` can differ from it, whereas
plain bilinear resizing preserves it).
"""
from __future__ import annotations

import contextlib
import functools
import io

import torch
import torch.nn.functional as F
from torch import nn

from .._utils import check_fraction
from ..models.zoo import stage_layers
from .registry import AdapterResult, register, to_unit

__all__ = ["upsample_registered", "upsample_grid", "map_from_grid", "split_at", "UPSAMPLE_MODE"]  # the adapters themselves are reached through explain()

_CAM = "CAM-based"
_NO_GAP_HEAD = "the class weights cannot be applied to the feature maps"


def _upsample(maps: torch.Tensor, size) -> torch.Tensor:
    """[N, h, w] -> [N, H, W], bilinear (align_corners=False, which preserves the mean)."""
    maps = torch.as_tensor(maps, dtype=torch.float32)
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


#: How :func:`upsample_grid` (and with it every aligned CAM, the CAM-grid random reference and the
#: captioners' word maps) interpolates between cell centres: ``"bicubic"``, Keys' cubic convolution
#: (Keys 1981, "Cubic convolution interpolation for digital image processing"; PyTorch's kernel,
#: :math:`a = -0.75`). It passes through every cell's value, as bilinear interpolation does, but a
#: bilinear interpolant is largest on a cell centre, always: the peak of a bilinearly upsampled map
#: can only sit on one of the grid's cell centres, one pixel in :math:`S^2`. Cubic convolution uses
#: the slope the neighbouring cells give, so two adjacent cells of similar value peak between them,
#: nearer the larger, and an isolated cell still peaks on its own centre. Measured on the book's
#: default brain model (``benchmarks/bench_default_models.py``), where a small lesion often sits
#: between two cell rows, the strict pointing game rises from 0.56 to 0.81.
UPSAMPLE_MODE = "bicubic"
_MODES = ("bilinear", "bicubic")


def upsample_registered(maps: torch.Tensor, size, stride, origin, *, mode: str = UPSAMPLE_MODE) -> torch.Tensor:
    r"""Upsample grid maps [N, h, w] to [N, H, W] with each cell's value at its receptive-field centre.

    Cell :math:`(i, j)` of a layer with stride :math:`S` is centred on input pixel
    :math:`(o_y + iS,\; o_x + jS)` (``origin`` :math:`o`, from
    :func:`medxai_lite.models.grid_origin`). Pixel :math:`x` therefore reads the grid at
    :math:`u = (x - o) / S`, clamped at the border, by ``mode``: ``"bicubic"`` (default,
    :data:`UPSAMPLE_MODE`; the border cells are repeated for the kernel's outer taps) or
    ``"bilinear"``. Both pass through every cell's value at its centre. With ``"bilinear"``, plain
    resizing (``align_corners=False``) is the special case :math:`o = S/2 - 1/2`.

    ``stride`` and ``origin`` are numbers or ``(y, x)`` pairs.

    Example
    -------
    >>> grid = torch.zeros(1, 2, 2); grid[0, 0, 0] = 1
    >>> upsample_registered(grid, (4, 4), 2, 0.0)[0, 0, 0].item()   # pixel 0 is cell 0's centre
    1.0
    >>> row = torch.tensor([[[0.0, 1.0, 1.0, 0.0]]])               # two equal cells, centres at 4 and 8
    >>> int(upsample_registered(row, (1, 16), 4, 0.0)[0, 0].argmax())            # peaks between them
    6
    >>> int(upsample_registered(row, (1, 16), 4, 0.0, mode="bilinear")[0, 0].argmax())   # on a centre
    4
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}; got {mode!r}")
    maps = torch.as_tensor(maps, dtype=torch.float32)
    if maps.dim() != 3:
        raise ValueError(f"maps must be [N, h, w]; got shape {tuple(maps.shape)}")
    (H, W), (h, w) = tuple(size), maps.shape[-2:]
    sy, sx = (stride, stride) if isinstance(stride, (int, float)) else stride
    oy, ox = (origin, origin) if isinstance(origin, (int, float)) else origin

    def coords(n_out, n_in, s, o):
        u = (torch.arange(n_out, dtype=torch.float32, device=maps.device) - o) / s
        return torch.zeros_like(u) if n_in == 1 else (u.clamp(0, n_in - 1) / (n_in - 1)) * 2 - 1

    gy, gx = coords(H, h, sy, oy), coords(W, w, sx, ox)
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1)          # [H, W, (x, y)]
    grid = grid.expand(len(maps), H, W, 2)
    return F.grid_sample(maps[:, None], grid, mode=mode, padding_mode="border", align_corners=True)[:, 0]


def _upsample_cam(low, call, align: bool) -> torch.Tensor:
    """A layer's [N, h, w] CAM at input resolution: registered when ``align`` and the arch is known."""
    return upsample_grid(low, call.size, call.arch, align)


def upsample_grid(low, size, arch: str | None, align: bool = True, *, mode: str = UPSAMPLE_MODE) -> torch.Tensor:
    """[N, h, w] grid maps of a zoo network ``arch`` -> [N, H, W]: with ``align`` (and a known
    arch) each cell at its receptive-field centre, interpolated by ``mode`` (default
    :data:`UPSAMPLE_MODE`; :func:`upsample_registered`, the stride from
    :func:`medxai_lite.models.zoo.cell_stride`, the origin from
    :func:`medxai_lite.models.grid_origin`), else plain bilinear resizing, as the libraries do.
    :func:`map_from_grid` makes a finished one-layer CAM of it."""
    from ..models.zoo import cell_stride, grid_origin

    low = torch.as_tensor(low, dtype=torch.float32)
    (H, W), (h, w) = tuple(size), low.shape[-2:]
    sy, sx = cell_stride(H, h), cell_stride(W, w)           # the network's stride, not H / h
    oy, ox = grid_origin(arch, sy), grid_origin(arch, sx)
    if not align or oy is None:
        return _upsample(low, (H, W))
    return upsample_registered(low, (H, W), (sy, sx), (oy, ox), mode=mode)


def map_from_grid(low, size, arch: str | None, *, mode: str = UPSAMPLE_MODE) -> torch.Tensor:
    """A one-layer CAM from its grid, as the aligned adapters make it: ReLU on the grid,
    :func:`upsample_grid` by ``mode``, ReLU again (the cubic kernel undershoots) and min-max per map.

    ``low`` is [N, h, w], e.g. ``explain(...).extras["cam"]``; ``mode="bilinear"`` reads the same
    cells the way the libraries interpolate.

    Example
    -------
    >>> res = explain("gradcam", model, x)                                         # doctest: +SKIP
    >>> bilinear = map_from_grid(res.extras["cam"], x.shape[-2:], "resnet14", mode="bilinear")  # doctest: +SKIP
    """
    low = torch.as_tensor(low, dtype=torch.float32)
    return _unit(upsample_grid(low.clamp_min(0), size, arch, mode=mode))


def _unit(raw: torch.Tensor) -> torch.Tensor:
    """ReLU, then min-max to [0, 1] per image: the scaling both pytorch-grad-cam and torchcam use."""
    return to_unit(raw, "positive", "minmax")


def _quiet():
    # pytorch-grad-cam's Ablation-CAM draws a tqdm bar per image; the book does not want them.
    return contextlib.redirect_stderr(io.StringIO())


def _pgc(call, cls_name: str, layer=None, *, align: bool = True, eigen_smooth: bool = False, setup=None,
         head=None, **init) -> AdapterResult:
    r"""Run a pytorch-grad-cam class; record each layer's weighted sum before the library resizes it.

    ``align=False`` keeps the library's normalised maps; ``align=True`` rebuilds them the way the
    library does from the registered sums: ReLU on the grid (the method's
    :math:`L = \mathrm{ReLU}(\sum_k \alpha_k A^k)`), upsampling, min-max per layer, mean over
    layers, min-max. ``raw`` keeps the signed sums, upsampled.
    """
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layers = call.layers(layer)
    if head is not None:   # (head, activations): the library runs on the network's head, fed the layer's output
        head, acts = head
        cam = getattr(pytorch_grad_cam, cls_name)(head, [head[0]], **init)
    else:
        cam = getattr(pytorch_grad_cam, cls_name)(call.model, layers, **init)
    if setup is not None:
        setup(cam)
    lows = []
    get_cam_image = cam.get_cam_image

    def recording(*args, **kwargs):  # instance-level: the library's class is not patched
        out = get_cam_image(*args, **kwargs)
        lows.append(torch.as_tensor(out, dtype=torch.float32))
        return out

    cam.get_cam_image = recording
    targets = None if call.targets is None else [ClassifierOutputTarget(int(t)) for t in call.targets]
    try:
        with _quiet():
            inputs = call.inputs(cam.uses_gradients) if head is None else acts
            maps = cam(input_tensor=inputs, targets=targets, eigen_smooth=eigen_smooth)
    finally:
        cam.activations_and_grads.release()
    if head is not None:   # the library sized its maps to the grid it was fed: resize them as it does for images
        from pytorch_grad_cam.utils.image import scale_cam_image

        maps = scale_cam_image(scale_cam_image(maps, target_size=call.size[::-1]))
    if call.targets is None:
        call.targets = cam.outputs.detach().argmax(1)
    ups = [_upsample_cam(low, call, align) for low in lows]
    if align:   # ReLU before upsampling, as the library: after it, a negative cell would cut its neighbours' ramps
        per_layer = [map_from_grid(low, call.size, call.arch) for low in lows]
        maps = per_layer[0] if len(per_layer) == 1 else _unit(torch.stack(per_layer).mean(0))
    grids = [tuple(int(v) for v in low.shape[-2:]) for low in lows]
    return AdapterResult(raw=torch.stack(ups).mean(0), maps=maps,
                   extras={"grid": grids[0], "grids": grids, "cam": lows[0].numpy()})


def _torchcam(call, cls_name: str, layer=None, *, gradients: bool, align: bool = True, **init) -> AdapterResult:
    """Run a torchcam extractor; several layers are fused as torchcam's ``fuse_cams`` does
    (the extractor's own scaling, then the element-wise maximum at input resolution)."""
    from torchcam import methods

    names = [call.layer_name(m) for m in call.layers(layer)]
    extractor = getattr(methods, cls_name)(call.model, target_layer=names, **init)
    fused = len(names) > 1
    try:
        with torch.set_grad_enabled(gradients):
            scores = call.model(call.inputs(gradients))
        if call.targets is None:
            call.targets = scores.detach().argmax(1)
        cams = extractor(class_idx=call.targets.tolist(), scores=scores, normalized=fused)
    finally:
        extractor.remove_hooks()
    cams = [c.detach().float() for c in cams]
    if fused:
        ups = [_upsample_cam(c, call, align) for c in type(extractor)._scale_cams(cams)]
        raw = torch.stack(ups).amax(0)
    else:
        raw = _upsample_cam(cams[0], call, align)
    grids = [tuple(int(v) for v in c.shape[-2:]) for c in cams]
    return AdapterResult(raw=raw, maps=_unit(raw), extras={"grid": grids[0], "grids": grids, "cam": cams[0].cpu().numpy()})


def _stage_layers(call) -> list:
    """One layer per resolution stage of a zoo model (for Layer-CAM's multi-layer fusion)."""
    if call.arch is None:
        raise ValueError("fuse_stages=True needs a zoo model (arch); pass layer=[...] instead")
    return stage_layers(call.model, call.arch)


# --------------------------------------------------------------------------- the methods


@register("cam", title="CAM", family=_CAM, library="torchcam", needs_gradients=False, cost="fast",
          paper="Zhou et al. 2016, Learning Deep Features for Discriminative Localization (CVPR)",
          requires={"gap_linear_head": _NO_GAP_HEAD}, scale="minmax")
def _cam(call, layer=None, align: bool = True):
    r"""Class Activation Mapping: :math:`L^c = \sum_k w^c_k A^k` with :math:`w^c` the final linear layer's row.

    Exact only for networks whose last convolutional features go through global average
    pooling into a single linear layer: then :math:`y^c = \frac{1}{Z}\sum_{ij} L^c_{ij} + b^c`.
    Zhou et al. 2016, https://arxiv.org/abs/1512.04150 (torchcam ``CAM``).
    """

    linears = [n for n, m in call.model.named_modules() if isinstance(m, nn.Linear)]
    if len(linears) != 1:
        raise ValueError(f"CAM needs exactly one Linear layer after global pooling; this model has {len(linears)}")
    result = _torchcam(call, "CAM", layer, align=align, gradients=False, fc_layer=linears[0])
    return result


@register("gradcam", title="Grad-CAM", family=_CAM, library="pytorch-grad-cam", needs_gradients=True, cost="fast",
          paper="Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks (ICCV)", scale="minmax")
def _gradcam(call, layer=None, align: bool = True, eigen_smooth: bool = False):
    r"""Grad-CAM: :math:`w^c_k = \frac{1}{Z}\sum_{ij} \partial y^c / \partial A^k_{ij}` (pooled gradients).

    Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391 (pytorch-grad-cam ``GradCAM``).
    """
    return _pgc(call, "GradCAM", layer, align=align, eigen_smooth=eigen_smooth)


@register("gradcampp", title="Grad-CAM++", family=_CAM, library="pytorch-grad-cam", needs_gradients=True,
          cost="fast", paper="Chattopadhay et al. 2018, Grad-CAM++ (WACV)", scale="minmax")
def _gradcampp(call, layer=None, align: bool = True, eigen_smooth: bool = False):
    r"""Grad-CAM++: :math:`w^c_k = \sum_{ij} \alpha^{kc}_{ij}\,\mathrm{ReLU}(\partial y^c/\partial A^k_{ij})`,
    :math:`\alpha = \frac{g^2}{2g^2 + \sum_{ab} A^k_{ab} g^3}` (higher-order terms from :math:`\exp(y^c)`).

    Chattopadhay et al. 2018, https://arxiv.org/abs/1710.11063 (pytorch-grad-cam ``GradCAMPlusPlus``).
    """
    return _pgc(call, "GradCAMPlusPlus", layer, align=align, eigen_smooth=eigen_smooth)


@register("smooth_gradcampp", title="Smooth Grad-CAM++", family=_CAM, library="torchcam", needs_gradients=True,
          cost="medium", paper="Omeiza et al. 2019, Smooth Grad-CAM++ (arXiv:1908.01224)", scale="minmax", presets={"quick": {"num_samples": 2}})
def _smooth_gradcampp(call, layer=None, align: bool = True, num_samples: int = 4, std: float = 0.3):
    r"""Smooth Grad-CAM++: Grad-CAM++ with the gradient powers averaged over ``num_samples``
    noisy copies :math:`x + \mathcal{N}(0, \sigma^2)` (SmoothGrad applied to the weights).

    Omeiza et al. 2019, https://arxiv.org/abs/1908.01224 (torchcam ``SmoothGradCAMpp``).
    """
    return _torchcam(call, "SmoothGradCAMpp", layer, align=align, gradients=False, num_samples=int(num_samples), std=float(std))


@register("xgradcam", title="XGrad-CAM", family=_CAM, library="pytorch-grad-cam", needs_gradients=True,
          cost="fast", paper="Fu et al. 2020, Axiom-based Grad-CAM (BMVC)", scale="minmax")
def _xgradcam(call, layer=None, align: bool = True, eigen_smooth: bool = False):
    r"""XGrad-CAM: :math:`w^c_k = \sum_{ij} \frac{A^k_{ij}}{\sum_{ab} A^k_{ab}} \frac{\partial y^c}{\partial A^k_{ij}}`
    (chosen to satisfy the sensitivity and conservation axioms).

    Fu et al. 2020, https://arxiv.org/abs/2008.02312 (pytorch-grad-cam ``XGradCAM``).
    """
    return _pgc(call, "XGradCAM", layer, align=align, eigen_smooth=eigen_smooth)


@register("scorecam", title="Score-CAM", family=_CAM, library="torchcam", needs_gradients=False, cost="slow",
          paper="Wang et al. 2020, Score-CAM (CVPR Workshops)", scale="minmax", presets={"quick": {"batch_size": 128}})
def _scorecam(call, layer=None, align: bool = True, batch_size: int = 32):
    r"""Score-CAM: :math:`w^c_k = \mathrm{softmax}_k\big(y^c(x \odot s(U(A^k))) - y^c(x)\big)`, with :math:`U`
    upsampling and :math:`s` min-max scaling; one forward pass per channel, ``batch_size``
    masked images per pass (channels of all images share the batches).

    Wang et al. 2020, https://arxiv.org/abs/1910.01279 (torchcam ``ScoreCAM``).
    """
    return _torchcam(call, "ScoreCAM", layer, align=align, gradients=False, batch_size=int(batch_size))


@register("sscam", title="SS-CAM", family=_CAM, library="torchcam", needs_gradients=False, cost="slow",
          paper="Wang et al. 2020, SS-CAM: Smoothed Score-CAM (arXiv:2006.14255)", scale="minmax", presets={"quick": {"num_samples": 1, "batch_size": 128}})
def _sscam(call, layer=None, align: bool = True, num_samples: int = 4, std: float = 2.0, batch_size: int = 32):
    r"""SS-CAM: Score-CAM whose scores are averaged over ``num_samples`` noisy masks
    :math:`s(U(A^k)) + \mathcal{N}(0,\sigma^2)`. Cost: ``num_samples`` x channels forward passes;
    the paper (and torchcam) use 35 samples, budgeted here to 4 for CPU runs.

    Wang et al. 2020, https://arxiv.org/abs/2006.14255 (torchcam ``SSCAM``).
    """
    return _torchcam(call, "SSCAM", layer, align=align, gradients=False, batch_size=int(batch_size),
                     num_samples=int(num_samples), std=float(std))


@register("iscam", title="IS-CAM", family=_CAM, library="torchcam", needs_gradients=False, cost="slow",
          paper="Naidu et al. 2020, IS-CAM: Integrated Score-CAM (arXiv:2010.03023)", scale="minmax", presets={"quick": {"num_samples": 1, "batch_size": 128}})
def _iscam(call, layer=None, align: bool = True, num_samples: int = 4, batch_size: int = 32):
    r"""IS-CAM: Score-CAM integrated along the mask path,
    :math:`w^c_k = \mathrm{softmax}_k\big(\frac1N \sum_{i=1}^N y^c(x \odot \tfrac{i}{N} s(U(A^k))) - y^c(x)\big)`.
    Cost: ``num_samples`` x channels forward passes (torchcam default 10; budgeted to 4 here).

    Naidu et al. 2020, https://arxiv.org/abs/2010.03023 (torchcam ``ISCAM``).
    """
    return _torchcam(call, "ISCAM", layer, align=align, gradients=False, batch_size=int(batch_size), num_samples=int(num_samples))


@register("layercam", title="Layer-CAM", family=_CAM, library="torchcam", needs_gradients=True, cost="fast",
          paper="Jiang et al. 2021, LayerCAM (IEEE TIP)", scale="minmax")
def _layercam(call, layer=None, align: bool = True, fuse_stages: bool = False):
    r"""Layer-CAM: position-wise weights,
    :math:`L^c = \mathrm{ReLU}(\sum_k \mathrm{ReLU}(\partial y^c/\partial A^k) \odot A^k)`.

    Several layers (``layer=[...]``, or ``fuse_stages=True`` for one layer per resolution
    stage of a zoo model) are fused as in the paper (Eq. 9): each normalised map is scaled by
    :math:`\tanh(2 L)` and the element-wise maximum is taken at the finest resolution.
    Jiang et al. 2021, https://doi.org/10.1109/TIP.2021.3089943 (torchcam ``LayerCAM``).
    """
    if fuse_stages:
        if layer is not None:
            raise ValueError("pass either layer=[...] or fuse_stages=True, not both")
        layer = _stage_layers(call)
    return _torchcam(call, "LayerCAM", layer, align=align, gradients=True)


@register("ablationcam", title="Ablation-CAM", family=_CAM, library="pytorch-grad-cam", needs_gradients=False,
          cost="slow", paper="Desai & Ramaswamy 2020, Ablation-CAM (WACV)", scale="minmax", presets={"quick": {"batch_size": 128}})
def _ablationcam(call, layer=None, align: bool = True, batch_size: int = 32, ratio_channels_to_ablate: float = 1.0,
                 head_only: bool = True):
    r"""Ablation-CAM: :math:`w^c_k = (y^c - y^c_{A^k=0}) / y^c`, the relative drop of the class score
    when channel :math:`k` is zeroed. ``batch_size`` ablated copies per forward pass;
    ``ratio_channels_to_ablate`` < 1 ablates only the channels pytorch-grad-cam ranks first.

    ``head_only=True`` (default) gives pytorch-grad-cam the part of the network after the layer,
    fed the layer's activations, instead of the whole network: the library's ablation layer
    discards what reaches it and returns copies of the stored activations, so every ablated copy
    otherwise recomputes the network up to the layer for nothing. The maps are the same (the
    head sees the same activations; ``tests/test_explain.py``). When the graph cannot be cut at
    the layer (several layers, or a later layer that reads an earlier one) the whole network runs.

    Desai & Ramaswamy 2020, https://doi.org/10.1109/WACV45572.2020.9093360 (pytorch-grad-cam ``AblationCAM``).
    """
    ratio_channels_to_ablate = check_fraction("ratio_channels_to_ablate", ratio_channels_to_ablate, closed=True)
    head = None
    layers = call.layers(layer)
    if head_only and len(layers) == 1:
        parts = split_at(call.model, layers[0])
        if parts is not None:
            body, tail = parts
            with torch.no_grad():
                acts = body(call.images).detach()
            head = (nn.Sequential(nn.Identity(), tail).eval(), acts)
    return _pgc(call, "AblationCAM", layer, align=align, ablation_layer=_ablation_layer(), batch_size=int(batch_size),
                ratio_channels_to_ablate=float(ratio_channels_to_ablate), head=head)


def _ablation_layer():
    """A fresh ablation layer of the class :func:`_ablation_layer_class` builds once."""
    return _ablation_layer_class()()


@functools.cache
def _ablation_layer_class():
    """pytorch-grad-cam's ``AblationLayer`` with the minimum of the activations read once a batch.

    The library ablates channel :math:`k_i` of copy :math:`i` by writing 0 into it when the
    batch's smallest activation is 0 (after a ReLU), else :math:`\\min A - 10^7`, taking
    ``torch.min`` of the whole batch of copies anew for every copy: 2048 reductions over
    2048 x 128 x 25 values for one image of a ResNet50 at 80 px, about 0.8 s of its 1 s. The
    minimum after a write is the value written (it is the smallest), so carrying it forward gives
    the same values, the same writes and the same maps (``tests/test_explain.py``).
    """
    from pytorch_grad_cam import AblationLayer

    class OneMinimumAblationLayer(AblationLayer):
        def __call__(self, x):
            output = self.activations
            low = torch.min(output)
            if low == 0:
                for i in range(output.size(0)):
                    output[i, self.indices[i], :] = 0
            else:
                for i in range(output.size(0)):
                    low = low - 1e7            # the library's ABLATION_VALUE below the running minimum
                    output[i, self.indices[i], :] = low
            return output

    return OneMinimumAblationLayer


def split_at(model: nn.Module, layer: nn.Module):
    """``(body, head)`` with ``body(x)`` the output of ``layer`` and ``head(body(x)) == model(x)``,
    cut from the model's ``torch.fx`` graph; ``None`` when the model cannot be traced or the part
    after ``layer`` also reads something computed before it (a skip connection around the cut)."""
    import torch.fx as fx

    name = next((n for n, m in model.named_modules() if m is layer), None)
    if not name:
        return None

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return m is layer or super().is_leaf_module(m, qualname)

    try:
        graph = Tracer().trace(model)
    except Exception:  # noqa: BLE001 - an untraceable forward (data-dependent control flow): no cut
        return None
    nodes = list(graph.nodes)
    cut = [n for n in nodes if n.op == "call_module" and n.target == name]
    if len(cut) != 1:
        return None
    at = nodes.index(cut[0])
    before, after = set(nodes[:at + 1]), nodes[at + 1:]
    if any(a in before and a is not cut[0] and a.op != "get_attr" for n in after for a in n.all_input_nodes):
        return None
    body_graph, head_graph = fx.Graph(), fx.Graph()
    env = {}
    for n in nodes[:at + 1]:
        env[n] = body_graph.node_copy(n, lambda a: env[a])
    body_graph.output(env[cut[0]])
    env = {cut[0]: head_graph.placeholder("activations")}

    def look(a):   # a parameter or buffer fetched before the cut is fetched again in the head
        if a not in env:
            env[a] = head_graph.node_copy(a, look)
        return env[a]

    for n in after:
        env[n] = head_graph.node_copy(n, look)
    return fx.GraphModule(model, body_graph), fx.GraphModule(model, head_graph)


@register("eigencam", title="Eigen-CAM", family=_CAM, library="pytorch-grad-cam", needs_gradients=False,
          cost="fast", paper="Muhammad & Yeasin 2020, Eigen-CAM (IJCNN)", scale="minmax")
def _eigencam(call, layer=None, align: bool = True):
    r"""Eigen-CAM: the projection of the activations on their first principal component,
    :math:`L = A\,v_1` with :math:`A = U \Sigma V^T`. Class-agnostic (the target is ignored) and the
    sign of :math:`v_1` is arbitrary.

    Muhammad & Yeasin 2020, https://arxiv.org/abs/2008.00299 (pytorch-grad-cam ``EigenCAM``).
    """
    return _pgc(call, "EigenCAM", layer, align=align)


@register("eigengradcam", title="EigenGrad-CAM", family=_CAM, library="pytorch-grad-cam", needs_gradients=True,
          cost="fast", paper="pytorch-grad-cam (Gildenblat et al.): Eigen-CAM on gradient x activation", scale="minmax")
def _eigengradcam(call, layer=None, align: bool = True):
    r"""EigenGrad-CAM: the first principal component of :math:`\partial y^c/\partial A \odot A`, which
    makes Eigen-CAM class-specific. A variant introduced by pytorch-grad-cam
    (https://github.com/jacobgil/pytorch-grad-cam, ``EigenGradCAM``).
    """
    return _pgc(call, "EigenGradCAM", layer, align=align)


@register("hirescam", title="HiRes-CAM", family=_CAM, library="pytorch-grad-cam", needs_gradients=True,
          cost="fast", paper="Draelos & Carin 2020, Use HiResCAM instead of Grad-CAM (arXiv:2011.08891)", scale="minmax")
def _hirescam(call, layer=None, align: bool = True, eigen_smooth: bool = False):
    r"""HiRes-CAM: element-wise :math:`L^c = \sum_k \partial y^c/\partial A^k \odot A^k` (no spatial
    averaging of the gradients), provably faithful for CNNs ending in a linear layer.

    Draelos & Carin 2020, https://arxiv.org/abs/2011.08891 (pytorch-grad-cam ``HiResCAM``).
    """
    return _pgc(call, "HiResCAM", layer, align=align, eigen_smooth=eigen_smooth)


@register("fullgrad", title="FullGrad", family=_CAM, library="pytorch-grad-cam", needs_gradients=True,
          cost="medium", paper="Srinivas & Fleuret 2019, Full-Gradient Representation (NeurIPS)", scale="minmax")
def _fullgrad(call):
    r"""FullGrad: :math:`S = \psi(|\nabla_x y^c \odot x|) + \sum_{l}\sum_{k} \psi(|\nabla_{b} y^c \odot b^l_k|)`,
    the input-gradient term plus every bias-gradient term (BatchNorm shifts included),
    each post-processed by :math:`\psi` (abs, upsample, rescale). Uses all layers; no ``layer``.

    Srinivas & Fleuret 2019, https://arxiv.org/abs/1905.00780 (pytorch-grad-cam ``FullGrad``).
    """
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = pytorch_grad_cam.FullGrad(call.model, [])
    summed = []
    aggregate = cam.aggregate_multi_layers
    cam.aggregate_multi_layers = lambda per_layer: (summed.append(per_layer.sum(1)), aggregate(per_layer))[1]
    targets = None if call.targets is None else [ClassifierOutputTarget(int(t)) for t in call.targets]
    try:
        maps = cam(input_tensor=call.inputs(True), targets=targets)
    finally:
        cam.activations_and_grads.release()
    if call.targets is None:
        call.targets = cam.outputs.detach().argmax(1)
    return AdapterResult(raw=summed[0], maps=maps)
