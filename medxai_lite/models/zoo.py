"""The model zoo: the four CNNs of the Chaddad et al. experiment, ResNet18, ResNet14, a small CNN and a hybrid ViT.

``get_model(arch, num_classes, pretrained=False)`` builds a torchvision network with a fresh
classification head; ``target_layer(model, arch)`` returns the layer whose activations the CAM
family reads (the last convolutional block), and ``cam_grid(model, arch, image_size)`` the size
of that layer's grid, which is all the spatial detail a CAM of that layer can show.

The CAM grid is ``image_size / output_stride``. The ImageNet CNNs downsample by 32, so the
Chaddad et al. experiment's ResNet50 at 224 px reads a 7 x 7 grid. ``output_stride=16`` removes
the last downsampling step (Chen et al. 2017, DeepLab; torchvision's
``replace_stride_with_dilation`` for the Bottleneck ResNets), which gives the same 7 x 7 grid at
112 px for a quarter of the pixels.

The book's default network (:data:`DEFAULT_ARCH`) is ``"resnet14"``: torchvision's ResNet18 without
its fourth stage (one stem convolution, three stages of two BasicBlocks of two convolutions each,
and the linear head: 14 weighted layers, counted as He et al. 2016 count them). Built plainly its
last block downsamples by 16, the same as a dilated ResNet18; on a 2-core CPU three such models
trained in 306 s against the dilated ResNet18s' 509 s (the dilated fourth stage made each training
step 1.5x as long as a plain ResNet18's). The ``cpu`` profile dilates its third stage as well
(``output_stride=8``) and trains at 96 px: a 12 x 12 grid of 8 px cells. At 112 px with 7 x 7
cells of 16 px most brain lesions held no cell centre, so no CAM of that layer could point into
them, and Grad-CAM's strict pointing game on the first 32 test lesions was 0.16 / 0.78 / 0.31
(brain / skin / chest); on the 12 x 12 grid it is 0.56-0.69 / 0.94-0.97 / 0.78-0.88 over the
arithmetics and CPUs measured (``benchmarks/bench_default_models.py``; the profile's comment in
:mod:`medxai_lite.models.train` lists the settings measured, ``tests/test_models.py::KNOWN_MISSES``
what still misses and why: on brain the map's peak plateau is partly off lesions of about one
cell, :func:`medxai_lite.metrics.peak_plateau`).
"""
from __future__ import annotations

import math
import types
import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch
from torch import nn

from .._utils import check_choice, model_device

__all__ = ["ARCHS", "PAPER_ARCHS", "OUTPUT_STRIDES", "ARCH_SPECS", "CAPABILITIES", "ArchSpec", "arch_spec",
           "infer_arch", "get_model", "target_layer", "stage_layers", "resolve_module", "module_name", "cam_grid", "grid_origin", "cell_stride",
           "SmallCNN", "num_parameters", "DEFAULT_ARCH"]

#: The architecture of the book's default models (``get_trained_model(dataset)``).
DEFAULT_ARCH = "resnet14"


#: Output strides ``get_model`` builds: 32 (the networks as published), 16 or 8 (the last one or two
#: downsampling steps removed).
OUTPUT_STRIDES = (32, 16, 8)


class SmallCNN(nn.Module):
    """Four conv-BN-ReLU blocks, global average pooling and one linear layer (~0.4 M parameters).

    GAP followed by a single ``Linear`` makes it a model on which the original CAM is exact.
    The last block is ``model.features[-1]``.
    """

    def __init__(self, num_classes: int = 2, width: int = 32):
        super().__init__()
        chans = [3, width, width * 2, width * 4, width * 8]
        blocks = []
        for i in range(4):
            blocks.append(nn.Sequential(
                nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False),
                nn.BatchNorm2d(chans[i + 1]),
                nn.ReLU(),
                nn.Conv2d(chans[i + 1], chans[i + 1], 3, padding=1, bias=False),
                nn.BatchNorm2d(chans[i + 1]),
                nn.ReLU(),
                nn.MaxPool2d(2) if i < 3 else nn.Identity(),
            ))
        self.features = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(chans[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@dataclass(frozen=True)
class ArchSpec:
    """Everything the package knows about one architecture of the zoo, in one place.

    Attributes
    ----------
    name, title : str
        Registry key (``"resnet50"``) and the name printed in tables and figures (``"ResNet50"``).
    paper : bool
        One of the four CNNs of the Chaddad et al. (2025) experiment.
    target_layer : str
        Dotted path of the CAM layer, the last convolutional block (``"layer4.-1"``: the last
        block of ``layer4``; negative indices count from the end of a ``Sequential``).
    stage_layers : tuple of str
        One layer per resolution stage, input side first (Layer-CAM's multi-layer fusion, the
        CAM chapter's layer comparison).
    blocks : tuple of str
        Coarse blocks, output side first, for cascading parameter randomisation.
    capabilities : frozenset of str
        ``"gap_linear_head"`` (global average pooling then one Linear layer: the original CAM
        applies), ``"relu"`` (every non-linearity is a ReLU: DeconvNet, guided backpropagation,
        DeepLIFT's rescale rule and conservative LRP rules apply), ``"batchnorm_free"`` (LRP's
        epsilon rule on every layer is conservative).
    lacks : dict
        Why the architecture lacks a capability (read by the registry's refusal messages).
    canonizer : str or None
        zennit canonizer for LRP: ``"resnet"`` (merge BatchNorm, expose residual sums),
        ``"merge_bn"`` (merge BatchNorm into the preceding convolution) or ``None``.
    head : str
        Dotted path of the final Linear layer, replaced by a ``num_classes``-way one.
    weights : str or None
        torchvision's ImageNet weights enum (``None``: no published weights).
    grid_origin : str
        How a CAM cell maps to input pixels (see :func:`grid_origin`): ``"same"`` (same-padding
        convolutions: cell 0 centred on pixel 0), ``"maxpool2"`` (2 x 2 pooling) or ``"densenet"``.
    matches : callable
        ``matches(model) -> bool``: whether a model object is built like this architecture.
    builder : callable or None
        ``builder(num_classes) -> nn.Module`` for an architecture of this package (``None``: a
        torchvision network). Such a network has its own fixed stride and takes no ``output_stride``.
    """

    name: str
    title: str
    paper: bool
    target_layer: str
    stage_layers: tuple[str, ...]
    blocks: tuple[str, ...]
    capabilities: frozenset
    canonizer: str | None
    grid_origin: str
    matches: Callable[[nn.Module], bool]
    lacks: Mapping[str, str] = field(default_factory=dict)
    head: str = "fc"
    weights: str | None = None
    builder: Callable[[int], nn.Module] | None = None

    def has(self, capability: str) -> bool:
        check_choice("capability", capability, CAPABILITIES)
        return capability in self.capabilities

    def why_lacks(self, capability: str) -> str:
        """Why this architecture lacks ``capability`` (its own words, else the capability's default)."""
        check_choice("capability", capability, CAPABILITIES)
        return self.lacks.get(capability, _LACKS_DEFAULT.get(capability, f"it lacks {capability!r}"))


#: The capabilities an :class:`ArchSpec` may declare (a method's ``requires=`` names them);
#: ``"attention"``: the network has self-attention layers whose weights the attention family reads;
#: ``"language_model"``: the model writes text (no zoo classifier does; the text-based family runs on
#: the wrappers of :mod:`medxai_lite.models.text`, which are not zoo architectures);
#: ``"concept_bottleneck"``: the model predicts named concepts and its class from them (the concept
#: bottleneck wrappers of :mod:`medxai_lite.concepts`, not zoo architectures either).
CAPABILITIES = ("gap_linear_head", "relu", "batchnorm_free", "attention", "language_model", "concept_bottleneck")
_LACKS_DEFAULT = {"attention": "it is a convolutional network with no self-attention layers",
                  "language_model": "it is an image classifier that writes no text (wrap it with a text model of "
                                    "medxai_lite.models.text, e.g. get_trained_captioner)",
                  "concept_bottleneck": "it is an image classifier without a concept layer (wrap it with a concept "
                                        "bottleneck of medxai_lite.concepts, e.g. get_trained_cbm)"}


def _is_resnet(bottleneck: bool) -> Callable[[nn.Module], bool]:
    def matches(model: nn.Module) -> bool:
        from torchvision.models import ResNet
        from torchvision.models.resnet import Bottleneck

        return (isinstance(model, ResNet) and isinstance(model.layer1[0], Bottleneck) == bottleneck
                and not isinstance(model.layer4, nn.Identity))
    return matches


def _is_resnet14(model: nn.Module) -> bool:
    from torchvision.models import ResNet

    return isinstance(model, ResNet) and isinstance(model.layer4, nn.Identity)


def _is_tv(cls_name: str) -> Callable[[nn.Module], bool]:
    def matches(model: nn.Module) -> bool:
        import torchvision.models

        return isinstance(model, getattr(torchvision.models, cls_name))
    return matches


_ALL = frozenset({"gap_linear_head", "relu"})
_NOT_RELU = "its activations are SiLU and its squeeze-excitation blocks multiply activations, not ReLU units"
#: One entry per architecture: adding an architecture is adding an entry here (and its builder).
ARCH_SPECS: Mapping[str, ArchSpec] = types.MappingProxyType({s.name: s for s in (
    ArchSpec("resnet50", "ResNet50", True, "layer4.-1",
             ("layer1.-1", "layer2.-1", "layer3.-1", "layer4.-1"),
             ("fc", "layer4", "layer3", "layer2", "layer1", "conv1"),
             _ALL, "resnet", "same", _is_resnet(True),
             {"batchnorm_free": "it has BatchNorm after every convolution"}, "fc", "ResNet50_Weights"),
    ArchSpec("densenet121", "DenseNet121", True, "features.norm5",
             ("features.denseblock1", "features.denseblock2", "features.denseblock3", "features.norm5"),
             ("classifier", "features.denseblock4", "features.denseblock3", "features.denseblock2",
              "features.denseblock1", "features.conv0"),
             _ALL, None, "densenet", _is_tv("DenseNet"),
             {"batchnorm_free": "it has BatchNorm before every convolution"}, "classifier",
             "DenseNet121_Weights"),
    ArchSpec("vgg16", "VGG16", True, "features.-1",
             ("features.15", "features.22", "features.29"),
             ("classifier", "features.28", "features.21", "features.14", "features.7", "features.0"),
             frozenset({"relu", "batchnorm_free"}), "merge_bn", "maxpool2", _is_tv("VGG"),
             {"gap_linear_head": "its head is three Linear layers after a 7x7 adaptive pooling, not global "
                                 "average pooling followed by one Linear layer"}, "classifier.-1", "VGG16_Weights"),
    ArchSpec("efficientnet_b0", "EfficientNet-B0", True, "features.-1",
             ("features.2", "features.3", "features.5", "features.8"),
             ("classifier", "features.8", "features.6", "features.4", "features.2", "features.0"),
             frozenset({"gap_linear_head"}), None, "same", _is_tv("EfficientNet"),
             {"relu": _NOT_RELU, "batchnorm_free": "it has BatchNorm after every convolution"}, "classifier.-1",
             "EfficientNet_B0_Weights"),
    ArchSpec("resnet18", "ResNet18", False, "layer4.-1",
             ("layer1.-1", "layer2.-1", "layer3.-1", "layer4.-1"),
             ("fc", "layer4", "layer3", "layer2", "layer1", "conv1"),
             _ALL, "resnet", "same", _is_resnet(False),
             {"batchnorm_free": "it has BatchNorm after every convolution"}, "fc", "ResNet18_Weights"),
    ArchSpec("resnet14", "ResNet14", False, "layer3.-1",
             ("layer1.-1", "layer2.-1", "layer3.-1"),
             ("fc", "layer3", "layer2", "layer1", "conv1"),
             _ALL, "resnet", "same", _is_resnet14,
             {"batchnorm_free": "it has BatchNorm after every convolution"}, "fc", "ResNet18_Weights"),
    ArchSpec("small_cnn", "SmallCNN", False, "features.-1",
             ("features.0", "features.1", "features.2", "features.3"),
             ("classifier", "features.3", "features.2", "features.1", "features.0"),
             _ALL, "merge_bn", "maxpool2", lambda model: isinstance(model, SmallCNN),
             {"batchnorm_free": "it has BatchNorm after every convolution"}, "classifier", None, SmallCNN),
    ArchSpec("hybrid_vit", "Hybrid ViT", False, "stem",
             ("stem.0", "stem.1", "stem.2", "blocks.-1"),
             ("head", "blocks.3", "blocks.2", "blocks.1", "blocks.0", "stem"),
             frozenset({"attention"}), None, "same", lambda model: _is_hybrid_vit(model),
             {"gap_linear_head": "it classifies the class token after its transformer blocks, not globally "
                                 "pooled convolutional features",
              "relu": "its transformer blocks use GELU and softmax attention, which multiplies activations",
              "batchnorm_free": "its convolutional stem has BatchNorm"},
             "head", None, lambda num_classes: _hybrid_vit(num_classes)),
)})


def _hybrid_vit(num_classes: int) -> nn.Module:
    from .vit import HybridViT

    return HybridViT(num_classes)


def _is_hybrid_vit(model: nn.Module) -> bool:
    from .vit import HybridViT

    return isinstance(model, HybridViT)


#: Every architecture ``get_model`` builds.
ARCHS = tuple(ARCH_SPECS)
#: The four CNNs of the Chaddad et al. (2025) experiment.
PAPER_ARCHS = tuple(name for name, spec in ARCH_SPECS.items() if spec.paper)


def arch_spec(arch: str) -> ArchSpec:
    """The :class:`ArchSpec` of ``arch`` (a ``ValueError`` names the valid architectures)."""
    check_choice("arch", arch, ARCHS)
    return ARCH_SPECS[arch]


def infer_arch(model: nn.Module) -> str | None:
    """The zoo architecture ``model`` is built like, from its class; ``None`` when unknown.

    torchvision ResNet with Bottleneck blocks -> ``"resnet50"``, with BasicBlocks ->
    ``"resnet18"``; DenseNet -> ``"densenet121"``; VGG -> ``"vgg16"``; EfficientNet ->
    ``"efficientnet_b0"``; :class:`SmallCNN` -> ``"small_cnn"`` (each spec's ``matches``).
    """
    return next((name for name, spec in ARCH_SPECS.items() if spec.matches(model)), None)


def resolve_module(model: nn.Module, path: str) -> nn.Module:
    """The submodule at a dotted ``path`` in which integers index a ``Sequential`` (``"layer4.-1"``)."""
    module = model
    for part in path.split("."):
        module = module[int(part)] if part.lstrip("-").isdigit() else getattr(module, part)
    return module


def module_name(model: nn.Module, path: str) -> str:
    """The ``named_modules`` name of the module at a spec ``path`` (``"layer4.-1"`` -> ``"layer4.1"``
    on ResNet18), which ``explain(..., layer=...)`` and the randomisation tests accept."""
    target = resolve_module(model, path)
    return next(name for name, m in model.named_modules() if m is target)


def stage_layers(model: nn.Module, arch: str) -> list[nn.Module]:
    """One layer per resolution stage of a zoo model, input side first (from its :class:`ArchSpec`)."""
    return [resolve_module(model, p) for p in arch_spec(arch).stage_layers]


_warned_offline = False


def _load_pretrained(arch: str, timeout: float):
    """Try to fetch ImageNet weights with a short socket timeout; ``None`` (one warning) when offline."""
    import socket

    import torchvision

    global _warned_offline
    enum = getattr(torchvision.models, arch_spec(arch).weights).DEFAULT
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        return enum.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # noqa: BLE001 - any network/ssl/hash failure means "no weights"
        if not _warned_offline:
            warnings.warn(
                f"ImageNet weights for {arch} could not be downloaded ({type(exc).__name__}: {exc}); "
                "using random initialisation instead.", RuntimeWarning, stacklevel=3)
            _warned_offline = True
        return None
    finally:
        socket.setdefaulttimeout(old)


def _dilate(model: nn.Module, arch: str, output_stride: int) -> None:
    """Turn the last stride-2 step (and for ``output_stride=8`` the one before) into stride 1, in place.

    ResNets keep their receptive field by dilating the later 3x3 convolutions, as torchvision's
    ``replace_stride_with_dilation`` does for Bottleneck blocks (BasicBlocks, which torchvision
    refuses to dilate, get the same treatment here). DenseNet121 drops the last transitions'
    pooling, VGG16 its last max-poolings, EfficientNet-B0 the stride of its last strided
    stages. The weights' shapes do not change, so ImageNet weights still load.
    """
    steps = 1 if output_stride == 16 else 2
    if arch in ("resnet18", "resnet14"):
        # ResNet14 (no fourth stage) is at 16 already: output_stride 8 dilates its layer3 alone
        stages = (model.layer3, model.layer4)[2 - steps:] if arch == "resnet18" else (model.layer3,)
        dilation = 1
        for stage in stages:
            first, *rest = stage
            first.conv1.stride = (1, 1)
            first.downsample[0].stride = (1, 1)
            first.conv1.dilation = first.conv1.padding = (dilation, dilation)
            dilation *= 2
            for conv in [first.conv2] + [c for block in rest for c in (block.conv1, block.conv2)]:
                conv.dilation = conv.padding = (dilation, dilation)
    elif arch == "densenet121":
        for name in ("transition3", "transition2")[:steps]:
            getattr(model.features, name).pool = nn.Identity()
    elif arch == "vgg16":
        for index in (30, 23)[:steps]:     # the fifth and fourth max-pooling; the last block stays features[-1]
            model.features[index] = nn.Identity()
    elif arch == "efficientnet_b0":
        for stage in (6, 4)[:steps]:       # the stride-2 depthwise convolutions of stages 6 and 4
            for conv in model.features[stage][0].modules():
                if isinstance(conv, nn.Conv2d) and conv.stride == (2, 2):
                    conv.stride = (1, 1)
    # resnet50 is built dilated by torchvision itself (see get_model)


def get_model(arch: str, num_classes: int, pretrained: bool = False, download_timeout: float = 5.0,
              zero_init_residual: bool = False, output_stride: int | None = None) -> nn.Module:
    """Build ``arch`` with a ``num_classes``-way head.

    ``pretrained=True`` loads ImageNet weights when they can be downloaded (timeout
    ``download_timeout`` seconds); offline it warns once and keeps the random initialisation.
    ``zero_init_residual=True`` starts every residual block of a ResNet as the identity (its
    last BatchNorm scale is zero; Goyal et al. 2017, "Accurate, large minibatch SGD", §5.1),
    which lets a deep ResNet trained from scratch learn in a few hundred steps. Networks without
    such blocks (DenseNet, VGG, EfficientNet, SmallCNN) are built as usual.
    ``output_stride`` is ``None`` (the network as built: 32 for the published networks, 16 for
    ResNet14), 32, 16 or 8 (the last one or two downsampling
    steps removed, so the CAM grid doubles or quadruples in each direction; see the module
    docstring). ResNet14 downsamples by 16 and takes 16 or 8 (8 dilates its third and last stage;
    with ``pretrained=True`` it loads ResNet18's ImageNet weights for the three stages it keeps). SmallCNN downsamples by 8 and
    takes only the default.

    Example
    -------
    >>> model = get_model("resnet18", num_classes=4)
    """
    import torchvision

    check_choice("arch", arch, ARCHS)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    spec = arch_spec(arch)
    native = 16 if arch == "resnet14" else 32
    if output_stride is None:
        output_stride = native
    check_choice("output_stride", output_stride, OUTPUT_STRIDES)
    if spec.builder is not None:
        if output_stride != 32:
            raise ValueError(f"output_stride applies to the torchvision networks; {arch} has a fixed stride of 8")
        return spec.builder(num_classes)
    extra = {"zero_init_residual": True} if zero_init_residual and arch.startswith("resnet") else {}
    if arch == "resnet50" and output_stride < 32:
        extra["replace_stride_with_dilation"] = [False, output_stride == 8, True]
    if arch == "resnet14":
        if output_stride not in (16, 8):
            raise ValueError(f"output_stride must be 16 or 8 for resnet14 (ResNet18's first three stages "
                             f"downsample by 16; 8 dilates the third), got {output_stride!r}")
        model = torchvision.models.resnet18(weights=None, **extra)
        model.layer4 = nn.Identity()                      # the fourth stage removed: layer3 is the last block
        model.fc = nn.Linear(256, 1000)
    else:
        model = getattr(torchvision.models, arch)(weights=None, **extra)
    if output_stride < 32 and arch != "resnet50" and not (arch == "resnet14" and output_stride == 16):
        _dilate(model, arch, output_stride)
    if pretrained:
        state = _load_pretrained(arch, download_timeout)
        if state is not None:
            if arch == "resnet14":                        # ResNet18's weights for the stages it keeps
                own = model.state_dict()
                state = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
                model.load_state_dict(state, strict=False)
            else:
                model.load_state_dict(state)
    path = arch_spec(arch).head
    parent, _, leaf = path.rpartition(".")
    owner = resolve_module(model, parent) if parent else model
    old = resolve_module(model, path)
    new = nn.Linear(old.in_features, num_classes)
    if leaf.lstrip("-").isdigit():
        owner[int(leaf)] = new
    else:
        setattr(owner, leaf, new)
    return model


def target_layer(model: nn.Module, arch: str) -> nn.Module:
    """The CAM target layer of ``arch``: the last convolutional block.

    ResNets: ``layer4[-1]``; DenseNet121: ``features.norm5`` (the final BatchNorm, after which a
    ReLU and pooling follow); VGG16 and EfficientNet-B0: ``features[-1]``; SmallCNN: ``features[-1]``.
    Its grid is ``image_size / output_stride`` cells a side: 12 x 12 for the ``cpu`` profile's
    default ResNet14 (96 px, stride 8), 6 x 6 for its other networks (stride 16), 7 x 7 for the
    published networks at 224 px (stride 32), 2 x 2 for them at 64 px. :func:`cam_grid` measures
    it for any model.
    """
    return resolve_module(model, arch_spec(arch).target_layer)


def cam_grid(model: nn.Module, arch: str, image_size: int) -> tuple[int, int]:
    """``(h, w)`` of the target layer's activations for a square input of ``image_size`` pixels.

    Measured by one forward pass of a zero image (a hook on :func:`target_layer`), so it is right
    for any output stride. A CAM of that layer is an ``h x w`` grid upsampled to the input.

    Example
    -------
    >>> cam_grid(get_model("resnet18", 2, output_stride=16).eval(), "resnet18", 112)
    (7, 7)
    """
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8 pixels, got {image_size!r}")
    shape = {}

    def record(module, inputs, output):   # returns None: the output is left as it is
        shape.setdefault("hw", tuple(output.shape[-2:]))

    hook = target_layer(model, arch).register_forward_hook(record)
    try:
        dev = model_device(model)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=dev))
        model.train(was_training)
    finally:
        hook.remove()
    return shape["hw"]


def cell_stride(n_pixels: int, n_cells: int) -> float:
    """The stride of a layer that turns ``n_pixels`` into ``n_cells``: the power of two nearest
    ``n_pixels / n_cells``. The zoo's networks downsample by powers of two, and an input that is
    not a multiple of the stride gives ``ceil(n_pixels / S)`` cells (ResNet18 at 112 px: 4 cells of
    32 px, not of 28), so the ratio alone would misplace the cells.

    >>> cell_stride(112, 7), cell_stride(112, 4), cell_stride(400, 13)
    (16.0, 32.0, 32.0)
    """
    if n_cells < 1 or n_pixels < 1:
        raise ValueError(f"n_pixels and n_cells must be positive; got {n_pixels!r}, {n_cells!r}")
    return float(2 ** round(math.log2(n_pixels / n_cells)))


def grid_origin(arch: str | None, stride: int) -> float | None:
    r"""Input-pixel coordinate of the receptive-field centre of cell 0 of a layer with ``stride``.

    Cell :math:`j` of a layer that downsamples by :math:`S` sees an input window centred at
    :math:`u_j = u_0 + jS`, with (Araujo et al. 2019, "Computing receptive fields of
    convolutional neural networks", Distill, Eq. for the centre)

    .. math:: u_0 = \sum_{l} \Big(\frac{k_l - 1}{2} - p_l\Big) \prod_{i<l} s_i

    over the layers on the way (kernel :math:`k_l`, dilated; padding :math:`p_l`; stride
    :math:`s_i`; pixel centres at integer coordinates). A convolution or max-pooling with
    "same" padding (:math:`p = (k-1)/2`) adds nothing, so ResNets and EfficientNet-B0 have
    :math:`u_0 = 0`: cell :math:`j` is centred on pixel :math:`jS`, not on the middle of the
    :math:`j`-th block of :math:`S` pixels (:math:`jS + S/2 - 1/2`) where plain bilinear
    upsampling puts it. That is half a cell, 7.5 px at stride 16 and 15.5 px at stride 32. VGG16
    and SmallCNN downsample with 2 x 2 max-pooling (:math:`u_0 = S/2 - 1/2`, no shift);
    DenseNet121's 2 x 2 average-pooling transitions add half their input stride each. ``None``
    for an architecture outside the zoo (nothing known).

    Example
    -------
    >>> grid_origin("resnet18", 16), grid_origin("vgg16", 16), grid_origin("densenet121", 16)
    (0.0, 7.5, 6.0)
    """
    if arch is None:
        return None
    arch_spec(arch)
    if not isinstance(stride, (int, float)) or stride < 1:
        raise ValueError(f"stride must be a number >= 1, got {stride!r}")
    rule = arch_spec(arch).grid_origin
    if rule == "maxpool2":
        return stride / 2 - 0.5
    if rule == "densenet":   # transitions after dense blocks 1, 2, 3 pool inputs of stride 4, 8, 16
        return float(sum(t / 2 for t in (4, 8, 16) if 2 * t <= stride))
    return 0.0


def num_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
