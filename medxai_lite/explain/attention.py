r"""Attention-based explanations (survey §2.1.3) for the zoo's hybrid Vision Transformer.

A transformer block mixes its tokens with attention weights :math:`A^{(l)}_h` (one row-stochastic
``tokens x tokens`` matrix per head :math:`h` and layer :math:`l`; rows are queries). The class
token's row says how much each patch token fed the class token in that one layer, which is the
raw-attention map. Because every block also adds its input back (the residual connection) and
the blocks are stacked, one layer's weights are not the whole story, and the methods here differ
in how they follow information through the stack:

- ``attention``: the class token's attention row in one layer, one head or fused over heads;
- ``attention_rollout``: the product of the residual-augmented matrices of all layers
  (Abnar & Zuidema 2020);
- ``attention_flow``: the maximum flow from each input token to the class token in the layered
  attention graph (Abnar & Zuidema 2020), by :func:`scipy.sparse.csgraph.maximum_flow`;
- ``grad_attention``: attention weighted by its gradient, positive part, propagated through the
  layers (Chefer, Gur & Wolf 2021, "Generic attention-model explainability").

:func:`attention_weights` records every layer's weights (and their gradients);
:func:`attention_entropy` measures how spread out they are, layer by layer.

Every method needs a model whose spec has the ``"attention"`` capability (the zoo's
``hybrid_vit``) or, for a model outside the zoo, modules of class
:class:`medxai_lite.models.vit.Attention`.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from .._utils import check_choice, model_device
from .cam import _upsample_cam
from .registry import AdapterResult, register

__all__ = ["attention_weights", "rollout", "attention_flow_matrix", "flow_to_class_token", "flow_upper_bound", "attention_entropy",
           "rollout_entropy", "fuse_heads"]

_FAMILY = "Attention-based"
_NEEDS = {"attention": "there are no attention weights to read"}
HEAD_FUSIONS = ("mean", "max", "min")


def _attention_modules(model: torch.nn.Module) -> list:
    from ..models.vit import Attention

    found = [m for m in model.modules() if isinstance(m, Attention)]
    if not found:
        raise ValueError("model has no attention layers (modules of class medxai_lite.models.vit.Attention); "
                         "the attention family explains the zoo's 'hybrid_vit'")
    return found


@contextmanager
def _recording(model: torch.nn.Module):
    """Hook every attention layer's ``attn_probs``: yields a list that fills with the ``[N, H, T, T]``
    weights of each forward pass, input side first (still in the autograd graph when it is on)."""
    weights, handles = [], []
    try:
        for m in _attention_modules(model):
            handles.append(m.attn_probs.register_forward_hook(lambda module, inputs, output: weights.append(output)))
        yield weights
    finally:
        for h in handles:
            h.remove()


def attention_weights(model: torch.nn.Module, images: torch.Tensor, targets=None, gradients: bool = False):
    """Every layer's attention weights on ``images``: a tensor ``[L, N, H, T, T]`` (layers input side
    first, heads, query tokens, key tokens; token 0 is the class token).

    With ``gradients=True`` it also returns the gradient of the ``targets`` logits (predicted class
    when ``None``) with respect to each weight, same shape: ``(weights, grads)``. The gradients are
    taken with :func:`torch.autograd.grad`, so no parameter's ``.grad`` is touched. The images are
    moved to the model's device, and the results stay there.
    """
    if model.training:
        raise RuntimeError("model is in training mode; call model.eval() first (attention weights with "
                           "dropout or batch statistics would not be the model's own)")
    images = images.to(model_device(model))
    if not gradients:
        with torch.no_grad(), _recording(model) as weights:
            model(images)
        return torch.stack(weights)
    with torch.enable_grad(), _recording(model) as weights:
        logits = model(images.detach().requires_grad_(True))   # a graph even when the parameters are frozen
        if targets is None:
            targets = logits.argmax(1)
        targets = torch.as_tensor(targets, device=logits.device).long().reshape(-1)
        grads = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), weights)
    return torch.stack([w.detach() for w in weights]), torch.stack(grads)


def fuse_heads(weights: torch.Tensor, fusion: str = "mean") -> torch.Tensor:
    """``[..., H, T, T]`` -> ``[..., T, T]``: mean, max or min over the heads (Abnar & Zuidema use the mean)."""
    check_choice("head_fusion", fusion, HEAD_FUSIONS)
    if fusion == "mean":
        return weights.mean(-3)
    return weights.amax(-3) if fusion == "max" else weights.amin(-3)


def _augment(a: torch.Tensor, residual: float) -> torch.Tensor:
    """:math:`\\hat A = (1 - r) A + r I`, rows renormalised (a fused max/min is not row-stochastic)."""
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
    return (1 - residual) * a + residual * eye


def rollout(attn: torch.Tensor, residual: float = 0.5) -> torch.Tensor:
    r"""Attention rollout (Abnar & Zuidema 2020, Eq. 1) of head-fused weights ``[L, N, T, T]``.

    .. math:: \tilde A(l_i) = \hat A(l_i)\,\tilde A(l_{i-1}), \quad \tilde A(l_1) = \hat A(l_1),
              \qquad \hat A = 0.5\,A + 0.5\,I

    (``residual`` is the weight of the identity, which stands for the skip connection.) Returns
    ``[N, T, T]``: row ``i`` says how much of token ``i``'s final state each input token contributed,
    if information mixed linearly along the attention weights. Identity attention rolls out to
    the identity; uniform attention to uniform rows.
    """
    if not 0 <= residual <= 1:
        raise ValueError(f"residual must be in [0, 1], got {residual}")
    joint = _augment(attn[0], residual)
    for a in attn[1:]:
        joint = _augment(a, residual) @ joint
    return joint


def attention_flow_matrix(attn: torch.Tensor, residual: float = 0.5) -> list[np.ndarray]:
    """The residual-augmented, row-normalised matrices ``[T, T]`` of one image's head-fused weights
    ``[L, T, T]``: the capacities of the layered attention graph."""
    return [_augment(a, residual).double().cpu().numpy() for a in attn]


def flow_to_class_token(layers: list[np.ndarray], sink: int = 0, resolution: float = 1e6) -> np.ndarray:
    r"""Attention flow (Abnar & Zuidema 2020, §3): the maximum flow from each input token to token
    ``sink`` of the last layer.

    The graph has ``L + 1`` layers of ``T`` nodes; node ``j`` of layer ``l - 1`` sends to node ``i``
    of layer ``l`` through an edge of capacity :math:`\hat A^{(l)}_{ij}` (``layers[l - 1][i, j]``,
    query ``i``, key ``j``). The flow value of input token ``j`` is the maximum flow from node
    ``(0, j)`` to node ``(L, sink)``. Unlike rollout, which multiplies weights along every path,
    the flow is bounded by the narrowest cut, so one weak link cannot be compensated by many
    paths: a token's flow is at most its smallest bottleneck.

    :func:`scipy.sparse.csgraph.maximum_flow` needs integer capacities, so they are scaled by
    ``resolution`` and rounded (flows are exact to about ``T / resolution``). Returns ``[T]``.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import maximum_flow

    n_layers, t = len(layers), layers[0].shape[0]
    rows, cols, caps = [], [], []
    for l, a in enumerate(layers):            # edges layer l -> layer l + 1
        if l == n_layers - 1:                 # the last layer: only the edges into the sink can carry flow
            a = np.where(np.arange(t)[:, None] == sink, a, 0.0)
        q, k = np.nonzero(a > 0)
        rows.append(l * t + k)
        cols.append((l + 1) * t + q)
        caps.append(np.rint(a[q, k] * resolution).astype(np.int64))
    size = (n_layers + 1) * t
    rows, cols, caps = np.concatenate(rows), np.concatenate(cols), np.concatenate(caps)
    keep = caps > 0
    graph = coo_matrix((caps[keep].astype(np.int32), (rows[keep], cols[keep])), shape=(size, size)).tocsr()
    sink_node = n_layers * t + sink
    return np.array([maximum_flow(graph, j, sink_node, method="dinic").flow_value for j in range(t)],
                    dtype=np.float64) / resolution


def flow_upper_bound(layers: list[np.ndarray], sink: int = 0) -> np.ndarray:
    r"""The cut bound of :func:`flow_to_class_token`: no flow from input token ``j`` exceeds the
    capacity leaving it, :math:`\sum_i \hat A^{(1)}_{ij}`, nor the capacity entering the sink,
    :math:`\sum_j \hat A^{(L)}_{sink,j} = 1`. Returns ``[T]``.

    On a wide graph (many tokens, every weight positive) the flow of each token often *equals*
    this bound: the layers in between offer so many paths that only the two ends limit it, and
    the flow map then shows the first layer's attention received per token, capped at 1.
    """
    return np.minimum(layers[0].sum(0), layers[-1][sink].sum())


def _entropy(p: torch.Tensor) -> torch.Tensor:
    p = p / p.sum(-1, keepdim=True).clamp_min(1e-12)
    return -(p * torch.log(p.clamp_min(1e-12))).sum(-1)


def attention_entropy(model: torch.nn.Module, images: torch.Tensor, query: str = "cls"):
    r"""Shannon entropy (nats) of the attention distributions, per layer and head: a tidy DataFrame.

    .. math:: H = -\sum_j A_{ij} \log A_{ij}

    ``query="cls"`` takes the class token's row over the patch tokens (renormalised); ``"all"``
    averages the entropy of every query row. Columns: ``layer`` (1 = input side), ``head``,
    ``entropy``, ``normalised`` (:math:`H / \log T`, 1 = uniform over the ``T`` keys), mean over
    the images. A diffuse layer is one near 1.
    """
    import pandas as pd

    check_choice("query", query, ("cls", "all"))
    attn = attention_weights(model, images)                   # [L, N, H, T, T]
    rows = attn[..., 0, 1:] if query == "cls" else attn
    h = _entropy(rows)
    if query == "all":
        h = h.mean(-1)
    keys = rows.shape[-1]
    h = h.mean(1)                                             # over images -> [L, H]
    return pd.DataFrame([{"layer": l + 1, "head": k + 1, "entropy": float(h[l, k]),
                          "normalised": float(h[l, k] / np.log(keys))}
                         for l in range(h.shape[0]) for k in range(h.shape[1])])


def rollout_entropy(model: torch.nn.Module, images: torch.Tensor, residual: float = 0.5):
    """Entropy (normalised by log of the number of patches) of the class token's rollout up to
    each layer, mean over images: a DataFrame with ``layer`` and ``normalised``."""
    import pandas as pd

    attn = fuse_heads(attention_weights(model, images))       # [L, N, T, T]
    rows = [rollout(attn[: l + 1], residual)[:, 0, 1:] for l in range(len(attn))]
    keys = attn.shape[-1] - 1
    return pd.DataFrame([{"layer": l + 1, "normalised": float(_entropy(r).mean() / np.log(keys))}
                         for l, r in enumerate(rows)])


# --------------------------------------------------------------------------- adapters


def _patch_maps(call, rows: torch.Tensor) -> torch.Tensor:
    """Class-token rows over the patch tokens ``[N, T-1]`` -> maps at input resolution, each token's
    value at the centre of its cell (the stem's 'same' convolutions put token 0 on pixel 0)."""
    n, p = rows.shape
    side = int(round(p ** 0.5))
    if side * side != p:
        raise ValueError(f"expected a square grid of patch tokens, got {p}")
    return _upsample_cam(rows.reshape(n, side, side).float().cpu(), call, align=True)


def _check_layer(layer, depth: int) -> int:
    if not isinstance(layer, (int, np.integer)) or isinstance(layer, bool) or not -depth <= layer < depth:
        raise ValueError(f"layer must be an integer in [{-depth}, {depth - 1}] (this model has {depth} attention "
                         f"layers; -1 is the last), got {layer!r}")
    return int(layer) % depth


def _check_head(head, heads: int):
    if isinstance(head, str):
        check_choice("head", head, HEAD_FUSIONS)
        return head
    if not isinstance(head, (int, np.integer)) or isinstance(head, bool) or not 0 <= head < heads:
        raise ValueError(f"head must be 'mean', 'max', 'min' or an integer in [0, {heads - 1}], got {head!r}")
    return int(head)


def _check_residual(residual) -> float:
    if not isinstance(residual, (int, float)) or not 0 <= residual <= 1:
        raise ValueError(f"residual must be a number in [0, 1] (the weight of the skip connection), got {residual!r}")
    return float(residual)


@register("attention", title="Raw attention", family=_FAMILY, library="none (hooks)", needs_gradients=False,
          cost="fast", paper="Vaswani et al. 2017; Dosovitskiy et al. 2021", requires=_NEEDS)
def _raw_attention(call, layer: int = -1, head="mean") -> AdapterResult:
    """The class token's attention weights over the patch tokens in one layer (one head, or fused)."""
    attn = attention_weights(call.model, call.images)                   # [L, N, H, T, T]
    index = _check_layer(layer, len(attn))
    head = _check_head(head, attn.shape[2])
    a = attn[index]
    rows = (a[:, head] if isinstance(head, int) else fuse_heads(a, head))[:, 0, 1:]
    return AdapterResult(raw=_patch_maps(call, rows), extras={"layer": index, "head": head})


@register("attention_rollout", title="Attention Rollout", family=_FAMILY, library="none (hand-written)",
          needs_gradients=False, cost="fast", paper="Abnar & Zuidema 2020", requires=_NEEDS)
def _attention_rollout(call, head_fusion: str = "mean", residual: float = 0.5) -> AdapterResult:
    """Product of the residual-augmented attention matrices of every layer; the class token's row."""
    attn = fuse_heads(attention_weights(call.model, call.images), head_fusion)
    joint = rollout(attn, _check_residual(residual))
    return AdapterResult(raw=_patch_maps(call, joint[:, 0, 1:]))


@register("attention_flow", title="Attention Flow", family=_FAMILY, library="scipy (maximum_flow)",
          needs_gradients=False, cost="medium", paper="Abnar & Zuidema 2020", requires=_NEEDS, scale="minmax")
def _attention_flow(call, head_fusion: str = "mean", residual: float = 0.5) -> AdapterResult:
    """Maximum flow from each input token to the class token through the layered attention graph.

    Min-max scaled: flows bunch just below their bound of 1 (see :func:`flow_upper_bound`), and
    divided by their maximum they would all look alike.
    """
    attn = fuse_heads(attention_weights(call.model, call.images), head_fusion)     # [L, N, T, T]
    residual = _check_residual(residual)
    flows = [flow_to_class_token(attention_flow_matrix(attn[:, i], residual))[1:] for i in range(attn.shape[1])]
    return AdapterResult(raw=_patch_maps(call, torch.tensor(np.stack(flows))))


@register("grad_attention", title="Gradient-weighted attention", family=_FAMILY, library="none (hand-written)",
          needs_gradients=True, cost="fast", paper="Chefer, Gur & Wolf 2021", requires=_NEEDS)
def _grad_attention(call) -> AdapterResult:
    r"""Attention times its gradient, positive part, mean over heads, accumulated through the layers.

    Chefer, Gur & Wolf (2021), Eqs. 5-6: :math:`\bar A = \mathbb E_h[(\nabla A \odot A)^+]` and
    :math:`R \leftarrow R + \bar A R` from :math:`R = I`; the class token's row of :math:`R`.
    """
    targets = call.require_targets()
    attn, grads = attention_weights(call.model, call.images, targets, gradients=True)
    t = attn.shape[-1]
    relevance = torch.eye(t, dtype=attn.dtype, device=attn.device).expand(attn.shape[1], t, t).clone()
    for a, g in zip(attn, grads):
        relevance = relevance + (g * a).clamp_min(0).mean(1) @ relevance
    return AdapterResult(raw=_patch_maps(call, relevance[:, 0, 1:]))
