r"""Gradient / backpropagation-based methods (survey §2.1.2).

Each adapter wraps captum (``captum.attr``), zennit (LRP) or PAIR's ``saliency`` (XRAI).
Attributions come back as ``extras["attributions"]`` float32 [N, C, H, W]; ``raw`` reduces the
channels: the channel *sum* for methods with a summation property (Integrated Gradients,
DeepLIFT, DeepSHAP, LRP: ``raw.sum()`` per image is the explained score difference), the
channel *max of absolute values* for gradient images (saliency, DeconvNet, guided
backpropagation, Guided Grad-CAM; Simonyan et al.'s reduction). ``maps`` default to
:math:`|raw|` scaled to [0, 1] (``sign=`` changes that).

Captum methods take ``smooth=True`` to run through a SmoothGrad noise tunnel
(``nt_samples`` noisy copies, noise std ``noise_level`` x the batch's value range); the
``"smoothgrad"`` method is the same with ``base=`` naming the inner method.

DeepLIFT, DeepSHAP and LRP run on :func:`~medxai_lite.explain._surgery.for_relevance`, a copy
of the model without in-place operations or re-used ReLU modules.
"""
from __future__ import annotations

import numpy as np
import torch

from .._utils import check_choice
from ._surgery import for_relevance
from .captum_tools import attribute as _attribute
from .captum_tools import attribution_result as _result
from .captum_tools import channel_sum as _channel_sum
from .captum_tools import gradient_image as _gradient_image
from .captum_tools import reference as _baseline
from .captum_tools import shap_background as _shap_background
from .registry import METHODS, AdapterResult, UnsupportedArchitectureError, register

__all__: list[str] = []  # adapters are reached through explain()

_GRAD = "Gradient-based"
# consequences; the refusal message puts the architecture's spec (what it lacks) in front of them
_NO_RELU = "captum's {} rule, defined on ReLU units, would silently return the plain gradient"
_DEEPLIFT_RULES = ("captum's DeepLIFT has no multiplier rule for these and attributions do not sum to "
                   "f(x) - f(baseline) (summation-to-delta fails)")
_LRP_RULES = ("no conservative LRP rule exists for these: relevance does not sum to the logit "
              "(it explodes, sum R / logit ~ 1e3)")
_EPS_BN = ("the epsilon rule on every layer is not conservative: sum R / logit is far from 1 "
           "(1e2 to 1e8 measured); use 'lrp_composite'")
_SMOOTHABLE = ("saliency", "deconvnet", "guided_backprop", "guided_gradcam", "integrated_gradients", "deeplift")


# --------------------------------------------------------------------------- captum gradient images


@register("saliency", title="Vanilla gradient (saliency)", family=_GRAD, library="captum", needs_gradients=True,
          cost="fast", paper="Simonyan et al. 2014, Deep Inside Convolutional Networks (ICLR Workshop)",
          sign="absolute")
def _saliency(call, smooth: bool = False, nt_samples: int = 8, noise_level: float = 0.15):
    r"""Saliency: :math:`M_{ij} = \max_c |\partial y^c / \partial x_{cij}|`.

    Simonyan et al. 2014, https://arxiv.org/abs/1312.6034 (captum ``Saliency``).
    """
    from captum.attr import Saliency

    attributions, _ = _attribute(call, Saliency(call.model), smooth=smooth, nt_samples=nt_samples,
                                 noise_level=noise_level, abs=False)
    return _result(attributions, _gradient_image)


@register("deconvnet", title="DeconvNet", family=_GRAD, library="captum", needs_gradients=True, cost="fast",
          paper="Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks (ECCV)",
          sign="absolute", requires={"relu": _NO_RELU.format("DeconvNet")})
def _deconvnet(call, smooth: bool = False, nt_samples: int = 8, noise_level: float = 0.15):
    r"""DeconvNet: backpropagate through each ReLU as :math:`R_{in} = \mathrm{ReLU}(R_{out})`, ignoring
    the forward mask. Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901 (captum ``Deconvolution``).
    """
    from captum.attr import Deconvolution

    attributions, _ = _attribute(call, Deconvolution(call.model), smooth=smooth, nt_samples=nt_samples,
                                 noise_level=noise_level)
    return _result(attributions, _gradient_image)


@register("guided_backprop", title="Guided Backpropagation", family=_GRAD, library="captum",
          needs_gradients=True, cost="fast",
          paper="Springenberg et al. 2015, Striving for Simplicity: The All Convolutional Net (ICLR Workshop)",
          sign="absolute", requires={"relu": _NO_RELU.format("guided-backpropagation")})
def _guided_backprop(call, smooth: bool = False, nt_samples: int = 8, noise_level: float = 0.15):
    r"""Guided backpropagation: through each ReLU pass only positive gradients at positive inputs,
    :math:`R_{in} = \mathbb{1}[x > 0]\,\mathrm{ReLU}(R_{out})`.

    Springenberg et al. 2015, https://arxiv.org/abs/1412.6806 (captum ``GuidedBackprop``).
    """
    from captum.attr import GuidedBackprop

    attributions, _ = _attribute(call, GuidedBackprop(call.model), smooth=smooth, nt_samples=nt_samples,
                                 noise_level=noise_level)
    return _result(attributions, _gradient_image)


@register("guided_gradcam", title="Guided Grad-CAM", family=_GRAD, library="captum", needs_gradients=True,
          cost="fast", paper="Selvaraju et al. 2017, Grad-CAM (ICCV)", sign="absolute",
          requires={"relu": _NO_RELU.format("guided-backpropagation")})
def _guided_gradcam(call, layer=None, smooth: bool = False, nt_samples: int = 8, noise_level: float = 0.15):
    r"""Guided Grad-CAM: guided backpropagation multiplied element-wise by the upsampled Grad-CAM
    of ``layer``, :math:`M = GB \odot U(L^c_{Grad\text{-}CAM})`.

    Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391 (captum ``GuidedGradCam``).
    """
    from captum.attr import GuidedGradCam

    method = GuidedGradCam(call.model, call.layers(layer)[0])
    attributions, _ = _attribute(call, method, smooth=smooth, nt_samples=nt_samples, noise_level=noise_level,
                                 interpolate_mode="bilinear")
    return _result(attributions, _gradient_image)


# --------------------------------------------------------------------------- path and reference methods


@register("integrated_gradients", title="Integrated Gradients", family=_GRAD, library="captum",
          needs_gradients=True, cost="medium",
          paper="Sundararajan et al. 2017, Axiomatic Attribution for Deep Networks (ICML)", sign="absolute", presets={"quick": {"n_steps": 16}})
def _integrated_gradients(call, baseline="black", n_steps: int = 32, blur_sigma: float | None = None,
                          internal_batch_size: int = 64, smooth: bool = False, nt_samples: int = 8,
                          noise_level: float = 0.15):
    r"""Integrated Gradients:
    :math:`IG_i = (x_i - x'_i)\int_0^1 \partial y^c(x' + \alpha(x - x'))/\partial x_i\,d\alpha`,
    so that :math:`\sum_i IG_i = y^c(x) - y^c(x')` (completeness). ``baseline`` :math:`x'`:
    ``"black"``, ``"zero"``, ``"mean"``, ``"blur"`` or a tensor; ``n_steps`` Gauss-Legendre
    points. ``extras["convergence_delta"]`` is the completeness error per image.

    Sundararajan et al. 2017, https://arxiv.org/abs/1703.01365 (captum ``IntegratedGradients``).
    """
    from captum.attr import IntegratedGradients

    reference = _baseline(call.images, baseline, blur_sigma)
    attributions, delta = _attribute(call, IntegratedGradients(call.model), smooth=smooth, nt_samples=nt_samples,
                                     noise_level=noise_level, baselines=reference, n_steps=int(n_steps),
                                     internal_batch_size=int(internal_batch_size), return_convergence_delta=True)
    result = _result(attributions, _channel_sum, delta)
    result.extras["baseline"] = reference.cpu().numpy()
    return result


@register("xrai", title="XRAI", family=_GRAD, library="saliency (PAIR)", needs_gradients=True, cost="slow",
          paper="Kapishnikov et al. 2019, XRAI: Better Attributions Through Regions (ICCV)", sign="all", scale="minmax", presets={"quick": {"steps": 8}})
def _xrai(call, steps: int = 32, algorithm: str = "fast", batch_size: int = 32):
    r"""XRAI: over-segment the image (Felzenszwalb at several scales), then grow a region ranking
    by the Integrated-Gradients gain per area, :math:`\mathrm{gain}(S) = \sum_{i \in S} IG_i / |S|`,
    (IG with black and white baselines, ``steps`` points). Each pixel gets its region's gain.
    ``algorithm``: ``"fast"`` or ``"full"``. One image at a time (the library's API).

    Kapishnikov et al. 2019, https://arxiv.org/abs/1906.02825 (PAIR ``saliency.core.XRAI``).
    """
    import saliency.core as pair

    check_choice("algorithm", algorithm, ("fast", "full"))
    model, device = call.model, call.images.device
    targets = call.require_targets()

    def call_model(batch, call_model_args=None, expected_keys=None):
        x = torch.as_tensor(np.asarray(batch), dtype=call.images.dtype, device=device).permute(0, 3, 1, 2)
        x.requires_grad_(True)
        score = model(x)[:, call_model_args["target"]].sum()
        grads = torch.autograd.grad(score, x)[0]
        return {pair.INPUT_OUTPUT_GRADIENTS: grads.permute(0, 2, 3, 1).cpu().numpy()}

    xrai = pair.XRAI()
    params = pair.XRAIParameters(steps=int(steps), algorithm=algorithm)
    maps = [xrai.GetMask(image.permute(1, 2, 0).cpu().numpy(), call_model, {"target": int(t)},
                         batch_size=int(batch_size), extra_parameters=params)
            for image, t in zip(call.images, targets)]
    return AdapterResult(raw=np.stack(maps).astype(np.float32))


@register("deeplift", title="DeepLIFT", family=_GRAD, library="captum", needs_gradients=True, cost="fast",
          paper="Shrikumar et al. 2017, Learning Important Features Through Propagating Activation Differences (ICML)",
          sign="absolute", requires={"relu": _DEEPLIFT_RULES})
def _deeplift(call, baseline="black", blur_sigma: float | None = None, smooth: bool = False, nt_samples: int = 8,
              noise_level: float = 0.15):
    r"""DeepLIFT (rescale rule): multipliers :math:`m = \Delta y / \Delta x` per non-linearity, chained
    like gradients, so :math:`\sum_i C_{\Delta x_i \Delta y^c} = y^c(x) - y^c(x')` (summation-to-delta).
    ``baseline`` as for Integrated Gradients. Runs on a surgery copy (no in-place ops, one ReLU
    module per use, max-pools as ReLU chains, which captum's max-pool rule gets wrong).
    Shrikumar et al. 2017, https://arxiv.org/abs/1704.02685 (captum ``DeepLift``).
    """
    from captum.attr import DeepLift

    reference = _baseline(call.images, baseline, blur_sigma)
    attributions, delta = _attribute(call, DeepLift(for_relevance(call.model, maxpool_as_relu=True)), smooth=smooth,
                                     nt_samples=nt_samples, noise_level=noise_level, baselines=reference,
                                     return_convergence_delta=True)
    return _result(attributions, _channel_sum, delta)


@register("deepshap", title="DeepSHAP", family=_GRAD, library="captum", needs_gradients=True, cost="medium",
          paper="Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions (NeurIPS)",
          sign="absolute", requires={"relu": _DEEPLIFT_RULES}, presets={"quick": {"n_noise": 2}})
def _deepshap(call, baselines=None, n_noise: int = 5):
    r"""DeepSHAP: DeepLIFT averaged over a reference distribution, :math:`\phi_i = \mathbb{E}_{x'}[C_i(x, x')]`,
    so :math:`\sum_i \phi_i = y^c(x) - \mathbb{E}_{x'}[y^c(x')]`. ``baselines``: a tensor
    [B, C, H, W] of reference images (training images are best); default: black, mean colour,
    blur and ``n_noise`` noisy references built from the batch. captum's ``DeepLiftShap`` is used
    (shap's DeepExplainer fails its own additivity check on these models).
    Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874.
    """
    from captum.attr import DeepLiftShap

    if baselines is None:
        reference = _shap_background(call.images, n_noise)
    else:
        reference = torch.as_tensor(baselines).to(call.images)
    if reference.ndim != 4 or reference.shape[1:] != call.images.shape[1:] or len(reference) < 2:
        raise ValueError("baselines must be a tensor [B >= 2, C, H, W] matching the images; "
                         f"got {list(reference.shape)}")
    method = DeepLiftShap(for_relevance(call.model, maxpool_as_relu=True))
    attributions, delta = _attribute(call, method, baselines=reference, return_convergence_delta=True)
    # captum returns one delta per (image, reference) pair; their mean is the error of the average
    delta = delta.reshape(len(call.images), -1).mean(1)
    return _result(attributions, _channel_sum, delta)


@register("smoothgrad", title="SmoothGrad", family=_GRAD, library="captum", needs_gradients=True, cost="medium",
          paper="Smilkov et al. 2017, SmoothGrad: removing noise by adding noise (ICML Workshop)", sign="absolute", presets={"quick": {"nt_samples": 4}})
def _smoothgrad(call, base: str = "saliency", nt_samples: int = 8, noise_level: float = 0.15,
                base_options: dict | None = None):
    r"""SmoothGrad: :math:`\hat M(x) = \frac1n\sum_{k=1}^n M(x + \mathcal N(0, \sigma^2))` over ``nt_samples``
    noisy copies, :math:`\sigma` = ``noise_level`` x (max - min) of the batch, for any
    ``base`` gradient method (captum ``NoiseTunnel``). Smilkov et al. 2017, https://arxiv.org/abs/1706.03825.
    """
    check_choice("base", base, _SMOOTHABLE)
    info = METHODS[base]
    if call.arch is not None and not info.supports(call.arch):
        raise UnsupportedArchitectureError(f"method 'smoothgrad' with base {base!r} does not support arch "
                                           f"{call.arch!r}: {info.reason(call.arch)}")
    return info.func(call, smooth=True, nt_samples=nt_samples, noise_level=noise_level, **(base_options or {}))


# --------------------------------------------------------------------------- LRP (zennit)


def _canonizers(arch: str | None) -> list:
    """The zennit canonizers the architecture's spec names (``ArchSpec.canonizer``)."""
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.torchvision import ResNetCanonizer

    from ..models.zoo import arch_spec

    kind = None if arch is None else arch_spec(arch).canonizer
    # DenseNet: BatchNorm precedes its convolution, nothing to merge (zennit's Pass rule)
    return {"resnet": [ResNetCanonizer()], "merge_bn": [SequentialMergeBatchNorm()]}.get(kind, [])


def _lrp(call, composite) -> AdapterResult:
    from zennit.attribution import Gradient

    targets = call.require_targets()
    twin = for_relevance(call.model)

    def start_with_logit(output):  # R at the output = the explained logit, all other classes 0
        return torch.nn.functional.one_hot(targets, output.shape[1]).to(output) * output

    with Gradient(model=twin, composite=composite) as attributor:
        _, relevance = attributor(call.inputs(True), start_with_logit)
    return _result(relevance, _channel_sum)


@register("lrp_epsilon", title="LRP-epsilon", family=_GRAD, library="zennit", needs_gradients=True, cost="fast",
          paper="Bach et al. 2015, On Pixel-Wise Explanations by Layer-Wise Relevance Propagation (PLoS ONE)",
          sign="absolute",
          requires={"relu": _LRP_RULES, "batchnorm_free": _EPS_BN})
def _lrp_epsilon(call, epsilon: float = 1e-6, ignore_bias: bool = True):
    r"""LRP with the epsilon rule on every convolution and linear layer,
    :math:`R_i = \sum_j \frac{x_i w_{ij}}{\epsilon + \sum_{i'} x_{i'} w_{i'j}} R_j`, starting from
    :math:`R = y^c`. With ``ignore_bias`` (default) biases take no share, so
    :math:`\sum_i R_i = y^c` up to :math:`\epsilon` (conservation). zennit with canonizers; captum's
    LRP was measured non-conservative through skip connections and concatenations.
    Bach et al. 2015, https://doi.org/10.1371/journal.pone.0130140.
    """
    from zennit.composites import LayerMapComposite, layer_map_base
    from zennit.rules import Epsilon
    from zennit.types import Linear

    zero = "bias" if ignore_bias else None
    composite = LayerMapComposite(layer_map_base() + [(Linear, Epsilon(epsilon=float(epsilon), zero_params=zero))],
                                  canonizers=_canonizers(call.arch))
    return _lrp(call, composite)


@register("lrp_composite", title="LRP (composite: epsilon, z+, flat)", family=_GRAD, library="zennit",
          needs_gradients=True, cost="fast",
          paper="Montavon et al. 2019, Layer-Wise Relevance Propagation: An Overview (LNCS 11700); "
                "Kohlbrenner et al. 2020, Towards Best Practice in Explaining Neural Network Decisions "
                "with LRP (IJCNN)",
          sign="absolute", requires={"relu": _LRP_RULES})
def _lrp_composite(call, epsilon: float = 1e-6, ignore_bias: bool = True):
    r"""LRP with zennit's ``EpsilonPlusFlat`` composite: flat rule on the first layer, z+ rule
    :math:`R_i = \sum_j \frac{x_i w^+_{ij}}{\sum_{i'} x_{i'} w^+_{i'j}} R_j` on the other convolutions, epsilon
    rule on linear layers, sums and average pools split proportionally; canonizers merge
    BatchNorm into convolutions and expose ResNet's residual sums. With ``ignore_bias``
    (default) :math:`\sum_i R_i = y^c` (conservation). Kohlbrenner et al. 2020,
    https://arxiv.org/abs/1910.09840; Montavon et al. 2019, https://doi.org/10.1007/978-3-030-28954-6_10.
    """
    from zennit.composites import EpsilonPlusFlat

    composite = EpsilonPlusFlat(epsilon=float(epsilon), zero_params="bias" if ignore_bias else None,
                                canonizers=_canonizers(call.arch))
    return _lrp(call, composite)
