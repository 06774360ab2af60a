r"""Model surgery for the rule-based attribution methods (DeepLIFT, DeepSHAP, LRP).

DeepLIFT and LRP replace the backward pass of every non-linearity by a rule attached to its
*module*. Four habits of torchvision models and captum defeat that; the summation and
conservation tests of ``tests/test_explain.py`` fail without the fix for each:

1. in-place operations (``nn.ReLU(inplace=True)``) break module backward hooks;
2. torchvision ResNet blocks call one ``self.relu`` module two or three times and add the
   identity in place (``out += identity``), so a hook on that module sees several inputs and
   captum's DeepLIFT fails;
3. DenseNet applies its last ReLU as ``F.relu(features, inplace=True)`` in ``forward``, which no
   module hook can see, so DeepLIFT's summation-to-delta drifts (ratio 1.15 instead of 1).
4. captum's DeepLIFT rule for max pooling loses part of the difference wherever the image and
   the reference pick different maxima (measured here: 8-75 % summation error on SmallCNN, up
   to 57 % on ResNet18 with a non-zero baseline). With ``maxpool_as_relu=True`` each max-pool
   is rewritten as a chain of ReLUs, :math:`\max(a, b) = a + \mathrm{ReLU}(b - a)`, which
   DeepLIFT's rescale rule handles exactly.

``for_relevance(model)`` returns a **copy** with these fixed; the numbers it computes are those
of the original model (identical, or equal up to float rounding with ``maxpool_as_relu``). The
user's model is never modified.
"""
from __future__ import annotations

import copy
import functools

import torch
from torch import nn

__all__ = ["for_relevance"]


def _basic_block_forward(self, x: torch.Tensor) -> torch.Tensor:
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return self.relu_out(out + identity)  # out of place, own ReLU module


def _bottleneck_forward(self, x: torch.Tensor) -> torch.Tensor:
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu_mid(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    return self.relu_out(out + identity)


class _SplitBasicBlock:  # mixed into a copy of torchvision's BasicBlock (see ``_split_block``)
    forward = _basic_block_forward


class _SplitBottleneck:
    forward = _bottleneck_forward


@functools.cache
def _split_class(base: type) -> type:
    # A subclass keeps ``isinstance(block, Bottleneck)`` true, which zennit's ResNetCanonizer
    # relies on, while our forward uses one ReLU module per use.
    from torchvision.models.resnet import Bottleneck

    mixin = _SplitBottleneck if issubclass(base, Bottleneck) else _SplitBasicBlock
    return type(f"Split{base.__name__}", (mixin, base), {"__module__": __name__})


def _split_block(block: nn.Module) -> None:
    """Give each ReLU use in a ResNet block its own module and add the identity out of place."""
    from torchvision.models.resnet import Bottleneck

    if isinstance(block, Bottleneck):
        block.relu_mid = nn.ReLU()
    block.relu_out = nn.ReLU()
    block.__class__ = _split_class(type(block))


class ReLUMaxPool2d(nn.Module):
    r"""``nn.MaxPool2d`` computed as a chain of ReLUs over each window: :math:`m \leftarrow m + \mathrm{ReLU}(e - m)`.

    The chain starts at the window's centre (never padding); padding takes a very negative
    constant, which never wins. One ReLU module per window element, so DeepLIFT's rescale rule
    sees every step. Same output as the pool up to float rounding. Input [N, C, H, W].
    """

    _PAD = -1e30

    def __init__(self, pool: nn.MaxPool2d):
        super().__init__()
        pair = nn.modules.utils._pair
        self.kernel_size, self.dilation = pair(pool.kernel_size), pair(pool.dilation)
        self.stride, self.padding = pair(pool.stride or pool.kernel_size), pair(pool.padding)
        n = self.kernel_size[0] * self.kernel_size[1]
        self.centre = (self.kernel_size[0] // 2) * self.kernel_size[1] + self.kernel_size[1] // 2
        self.relus = nn.ModuleList(nn.ReLU() for _ in range(n - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        (ph, pw), (kh, kw) = self.padding, self.kernel_size
        if ph or pw:
            x = nn.functional.pad(x, (pw, pw, ph, ph), value=self._PAD)
        out_h = (h + 2 * ph - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        out_w = (w + 2 * pw - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        cols = nn.functional.unfold(x, self.kernel_size, dilation=self.dilation, stride=self.stride)
        cols = cols.view(n, c, kh * kw, out_h, out_w)
        order = [self.centre] + [i for i in range(kh * kw) if i != self.centre]
        out = cols[:, :, order[0]]
        for relu, i in zip(self.relus, order[1:]):
            out = out + relu(cols[:, :, i] - out)
        return out


def _replace_maxpools(module: nn.Module) -> None:
    for name, child in module.named_children():
        if type(child) is nn.MaxPool2d and not child.ceil_mode and not child.return_indices:
            setattr(module, name, ReLUMaxPool2d(child))
        else:
            _replace_maxpools(child)


class _DenseNetForRelevance(nn.Module):
    """DenseNet with the final functional ``F.relu(inplace=True)`` turned into a module."""

    def __init__(self, densenet: nn.Module):
        super().__init__()
        self.features = densenet.features
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = densenet.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.relu(self.features(x))), 1))


def for_relevance(model: nn.Module, maxpool_as_relu: bool = False) -> nn.Module:
    """A copy of ``model`` on which module-rule attribution (DeepLIFT, DeepSHAP, LRP) is sound.

    - every module's ``inplace`` flag is set to ``False``;
    - torchvision ``BasicBlock`` / ``Bottleneck``: one ReLU module per use and an out-of-place
      residual addition;
    - torchvision ``DenseNet``: the functional final ReLU becomes an ``nn.ReLU`` module;
    - with ``maxpool_as_relu``: every ``nn.MaxPool2d`` becomes a :class:`ReLUMaxPool2d` (for
      DeepLIFT; LRP keeps the pools, whose winner-takes-all gradient is already conservative).

    The copy computes exactly the same outputs, keeps the training/eval mode of the original
    and shares no tensors with it. Example
    -------
    >>> safe = for_relevance(model)    # model itself is left untouched
    """
    from torchvision.models import DenseNet
    from torchvision.models.resnet import BasicBlock, Bottleneck

    twin = copy.deepcopy(model)
    for module in list(twin.modules()):
        if hasattr(module, "inplace") and isinstance(module.inplace, bool):
            module.inplace = False
        if isinstance(module, (BasicBlock, Bottleneck)):
            _split_block(module)
    if maxpool_as_relu:
        _replace_maxpools(twin)
    if isinstance(twin, DenseNet):
        training = twin.training
        twin = _DenseNetForRelevance(twin).train(training)
    for param in twin.parameters():
        param.grad = None
    return twin
