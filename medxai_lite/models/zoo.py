"""The model zoo: the four CNNs of the Chaddad et al. experiment, ResNet18 and a small CNN.

``get_model(arch, num_classes, pretrained=False)`` builds a torchvision network with a fresh
classification head; ``target_layer(model, arch)`` returns the layer whose activations the CAM
family reads (the last convolutional block).
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from .._utils import check_choice

__all__ = ["ARCHS", "PAPER_ARCHS", "get_model", "target_layer", "SmallCNN", "num_parameters"]

#: The four CNNs of the Chaddad et al. (2025) experiment.
PAPER_ARCHS = ("resnet50", "densenet121", "vgg16", "efficientnet_b0")
#: Every architecture ``get_model`` builds.
ARCHS = PAPER_ARCHS + ("resnet18", "small_cnn")

_TV_WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "resnet50": "ResNet50_Weights",
    "densenet121": "DenseNet121_Weights",
    "vgg16": "VGG16_Weights",
    "efficientnet_b0": "EfficientNet_B0_Weights",
}


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


_warned_offline = False


def _load_pretrained(arch: str, timeout: float):
    """Try to fetch ImageNet weights with a short socket timeout; ``None`` (one warning) when offline."""
    import socket

    import torchvision

    global _warned_offline
    enum = getattr(torchvision.models, _TV_WEIGHTS[arch]).DEFAULT
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


def get_model(arch: str, num_classes: int, pretrained: bool = False, download_timeout: float = 5.0,
              zero_init_residual: bool = False) -> nn.Module:
    """Build ``arch`` with a ``num_classes``-way head.

    ``pretrained=True`` loads ImageNet weights when they can be downloaded (timeout
    ``download_timeout`` seconds); offline it warns once and keeps the random initialisation.
    ``zero_init_residual=True`` starts every residual block of a ResNet as the identity (its
    last BatchNorm scale is zero; Goyal et al. 2017, "Accurate, large minibatch SGD", §5.1),
    which lets a deep ResNet trained from scratch learn in a few hundred steps. Networks without
    such blocks (DenseNet, VGG, EfficientNet, SmallCNN) are built as usual.

    Example
    -------
    >>> model = get_model("resnet18", num_classes=4)
    """
    import torchvision

    check_choice("arch", arch, ARCHS)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if arch == "small_cnn":
        return SmallCNN(num_classes)
    extra = {"zero_init_residual": True} if zero_init_residual and arch.startswith("resnet") else {}
    model = getattr(torchvision.models, arch)(weights=None, **extra)
    if pretrained:
        state = _load_pretrained(arch, download_timeout)
        if state is not None:
            model.load_state_dict(state)
    if arch.startswith("resnet"):
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    elif arch == "densenet121":
        model.classifier = nn.Linear(model.classifier.in_features, num_classes)
    elif arch == "vgg16":
        model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, num_classes)
    elif arch == "efficientnet_b0":
        model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, num_classes)
    return model


def target_layer(model: nn.Module, arch: str) -> nn.Module:
    """The CAM target layer of ``arch``: the last convolutional block.

    ResNets: ``layer4[-1]``; DenseNet121: ``features.norm5`` (the final BatchNorm, after which a
    ReLU and pooling follow); VGG16 and EfficientNet-B0: ``features[-1]``; SmallCNN: ``features[-1]``.
    """
    check_choice("arch", arch, ARCHS)
    if arch.startswith("resnet"):
        return model.layer4[-1]
    if arch == "densenet121":
        return model.features.norm5
    return model.features[-1]


def num_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
