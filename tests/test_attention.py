"""The attention family and the hybrid ViT: known answers for rollout, flow, entropy and for a ViT
built by hand whose class token looks at one patch."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from medxai_lite.explain import METHODS, UnsupportedArchitectureError, explain, list_methods
from medxai_lite.explain.attention import (attention_entropy, attention_flow_matrix, attention_weights,
                                           flow_to_class_token, flow_upper_bound, fuse_heads, rollout, rollout_entropy)
from medxai_lite.models import ARCH_SPECS, HybridViT, cam_grid, get_model, infer_arch, target_layer

ATTENTION = list_methods("Attention-based")
TARGET = 6          # the token the hand-built ViT's class token attends to: row 1, column 2 of a 4 x 4 grid


def looking_vit(target: int = TARGET) -> HybridViT:
    """One block, one head, width 8, 32 px input (4 x 4 tokens). The stem outputs zeros, so tokens are
    their position embeddings: the class token is e0, patch ``target`` is e1, the others 0. The query
    map sends e0 to e1 and keys are the (layer-normed) tokens, so the class token's query matches patch
    ``target`` only: its attention row is ~one-hot on it. Values and output projection are the identity
    and the head reads the e1 direction, so class 0's logit grows with that attention weight."""
    torch.manual_seed(0)
    model = HybridViT(num_classes=2, dim=8, depth=1, heads=1, grid=4)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for norm in (model.blocks[0].norm1, model.blocks[0].norm2, model.norm):
            norm.weight.fill_(1.0)
        model.cls_token[0, 0, 0] = 3.0
        model.pos_embed[0, 1 + target, 1] = 3.0
        qkv = model.blocks[0].attn.qkv.weight          # rows: q (0:8), k (8:16), v (16:24)
        qkv[1, 0] = 20.0
        qkv[8:16] = torch.eye(8)
        qkv[16:24] = torch.eye(8)
        model.blocks[0].attn.proj.weight.copy_(torch.eye(8))
        model.head.weight[0, 1], model.head.weight[1, 1] = 1.0, -1.0
    return model.eval()


def _images(n=2, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_the_family_is_registered_for_the_vit_only():
    assert {"attention", "attention_rollout", "attention_flow", "grad_attention"} <= set(ATTENTION)
    for name in ATTENTION:
        info = METHODS[name]
        assert info.archs == ("hybrid_vit",)
        assert "self-attention" in info.reason("resnet18")


def test_a_cnn_is_refused_with_the_reason(images=_images()):
    cnn = get_model("resnet18", 2).eval()
    with pytest.raises(UnsupportedArchitectureError, match="no self-attention layers"):
        explain("attention_rollout", cnn, images)


def test_a_model_outside_the_zoo_without_attention_gets_a_clear_error():
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    with pytest.raises(ValueError, match="no attention layers"):
        explain("attention", plain, _images())


def test_the_hybrid_vit_is_in_the_zoo_and_takes_any_input_size():
    model = get_model("hybrid_vit", 3).eval()
    assert infer_arch(model) == "hybrid_vit" and ARCH_SPECS["hybrid_vit"].has("attention")
    assert target_layer(model, "hybrid_vit") is model.stem
    assert cam_grid(model, "hybrid_vit", 112) == (14, 14) == model.tokens_grid(112)
    with torch.no_grad():
        for size in (32, 112, 224):
            assert model(_images(2, size)).shape == (2, 3)
    with pytest.raises(ValueError, match="output_stride"):
        get_model("hybrid_vit", 2, output_stride=16)


def test_attention_weights_are_row_stochastic_and_come_with_gradients():
    model = get_model("hybrid_vit", 2).eval()
    x = _images(2, 64)
    weights = attention_weights(model, x)
    assert weights.shape == (4, 2, 4, 65, 65)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 2, 4, 65))
    w2, grads = attention_weights(model, x, targets=[0, 1], gradients=True)
    torch.testing.assert_close(w2, weights)
    assert grads.shape == weights.shape and grads.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())

def test_the_fused_and_the_explicit_attention_give_the_same_outputs_and_gradients():
    """Unhooked, the ViT's attention runs through scaled_dot_product_attention; a hook on
    attn_probs switches to the explicit softmax(QK^T / sqrt(d)) V that explainers read. Logits and
    parameter gradients must not depend on which path ran."""
    torch.manual_seed(0)
    model = get_model("hybrid_vit", 3).train()
    x, y = _images(4, 64), torch.tensor([0, 1, 2, 0])

    def run():
        model.zero_grad()
        torch.manual_seed(1)
        logits = model(x)
        torch.nn.functional.cross_entropy(logits, y).backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters()]

    fused, fused_grads = run()
    seen = []
    handles = [b.attn.attn_probs.register_forward_hook(lambda m, i, o: seen.append(o.shape)) for b in model.blocks]
    explicit, explicit_grads = run()
    for h in handles:
        h.remove()
    assert len(seen) == len(model.blocks)        # the hooked pass did materialise A in every block
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)
    for a, b in zip(fused_grads, explicit_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)



# --------------------------------------------------------------------------- rollout and flow


def test_rollout_of_identity_attention_is_the_identity_and_its_map_uniform():
    eye = torch.eye(5).expand(3, 1, 5, 5)
    joint = rollout(eye)
    torch.testing.assert_close(joint, torch.eye(5)[None])
    patches = joint[0, 0, 1:]
    assert torch.all(patches == patches[0])


def test_rollout_of_uniform_attention_gives_every_patch_the_same_weight():
    uniform = torch.full((4, 1, 5, 5), 0.2)
    joint = rollout(uniform)
    # (0.5 U + 0.5 I)^4 = 0.5^4 I + (1 - 0.5^4) U: the class token keeps 1/16 extra, patches share the rest
    expected = 0.5 ** 4 * torch.eye(5) + (1 - 0.5 ** 4) * torch.full((5, 5), 0.2)
    torch.testing.assert_close(joint[0], expected)


def test_rollout_is_the_product_of_the_augmented_matrices():
    a = torch.softmax(torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(1)), -1)
    aug = [0.5 * m[0] + 0.5 * torch.eye(4) for m in a]
    torch.testing.assert_close(rollout(a)[0], aug[1] @ aug[0])


def test_flow_on_a_two_layer_toy_graph_equals_the_hand_computed_maximum_flow():
    # capacities [query, key]; the sink is token 0 of layer 2, so only row 0 of the second matrix
    # matters and every middle node has one edge to the sink: flow(j) = sum_i min(L1[i, j], L2[0, i])
    l1 = np.array([[.5, .3, .2], [.1, .6, .3], [.2, .2, .6]])
    l2 = np.array([[.4, .4, .2], [.3, .3, .4], [.1, .1, .8]])
    # j = 0: min(.5,.4) + min(.1,.4) + min(.2,.2) = .7;  j = 1: .3 + .4 + .2 = .9;  j = 2: .2 + .3 + .2 = .7
    np.testing.assert_allclose(flow_to_class_token([l1, l2]), [0.7, 0.9, 0.7], atol=1e-5)


def test_flow_equals_networkx_on_random_layered_graphs():
    rng = np.random.default_rng(0)
    attn = torch.softmax(torch.tensor(rng.normal(size=(3, 6, 6)) * 2), -1)
    layers = attention_flow_matrix(attn)
    graph = nx.DiGraph()
    for l, a in enumerate(layers):
        for q in range(6):
            for k in range(6):
                graph.add_edge((l, k), (l + 1, q), capacity=a[q, k])
    expected = [nx.maximum_flow_value(graph, (0, j), (3, 0)) for j in range(6)]
    np.testing.assert_allclose(flow_to_class_token(layers), expected, atol=1e-5)


def test_a_flow_never_exceeds_its_cut_bound():
    a = torch.softmax(torch.randn(3, 6, 6, generator=torch.Generator().manual_seed(2)) * 3, -1)
    layers = attention_flow_matrix(a)
    flows, bound = flow_to_class_token(layers), flow_upper_bound(layers)
    assert (flows >= 0).all() and (flows <= bound + 1e-6).all() and (bound <= 1 + 1e-9).all()
    # the hand-computed toy: out-capacities (column sums of L1) .8, 1.1, 1.1, sink inflow 1
    l1 = np.array([[.5, .3, .2], [.1, .6, .3], [.2, .2, .6]])
    l2 = np.array([[.4, .4, .2], [.3, .3, .4], [.1, .1, .8]])
    np.testing.assert_allclose(flow_upper_bound([l1, l2]), [0.8, 1.0, 1.0])


# --------------------------------------------------------------------------- the adapters on a ViT built by hand


@pytest.mark.parametrize("method", ATTENTION)
def test_a_class_token_that_looks_at_one_patch_puts_every_map_there(method):
    model = looking_vit()
    x = _images(2)
    with torch.no_grad():
        a = attention_weights(model, x)[0, :, 0, 0]           # class token's row, one head
    assert (a[:, 1 + TARGET] > 0.99).all()
    result = explain(method, model, x, targets=0)
    row, col = divmod(TARGET, 4)
    for m in result.maps:
        y, xx = np.unravel_index(m.argmax(), m.shape)
        assert abs(y - 8 * row) <= 4 and abs(xx - 8 * col) <= 4, (method, y, xx)
    # each token's value sits at the centre of its 8 x 8 cell, pixel 8 * index (the stem's origin is 0)
    assert result.maps[0, 8 * row, 8 * col] == pytest.approx(1.0)


def test_raw_attention_reads_the_layer_and_head_asked_for():
    model = get_model("hybrid_vit", 2).eval()
    x = _images(1, 64)
    weights = attention_weights(model, x)
    result = explain("attention", model, x, layer=1, head=2)
    assert result.extras == {"layer": 1, "head": 2}
    expected = weights[1, 0, 2, 0, 1:].reshape(8, 8)
    np.testing.assert_allclose(result.raw[0, ::8, ::8], expected.numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match=r"layer must be an integer in \[-4, 3\]"):
        explain("attention", model, x, layer=4)
    with pytest.raises(ValueError, match="head must be"):
        explain("attention", model, x, head=7)
    with pytest.raises(ValueError, match="head_fusion"):
        explain("attention_rollout", model, x, head_fusion="median")
    with pytest.raises(ValueError, match="residual"):
        explain("attention_flow", model, x, residual=2)


# --------------------------------------------------------------------------- entropy


def test_entropy_of_uniform_attention_is_one_and_of_one_hot_attention_zero():
    model = looking_vit()
    x = _images(2)
    focused = attention_entropy(model, x)
    assert focused["normalised"].iloc[0] < 0.01
    with torch.no_grad():
        model.blocks[0].attn.qkv.weight.zero_()
    uniform = attention_entropy(model, x)
    assert uniform["normalised"].iloc[0] == pytest.approx(1.0, abs=1e-6)
    assert set(uniform.columns) == {"layer", "head", "entropy", "normalised"}
    assert uniform["entropy"].iloc[0] == pytest.approx(np.log(16), abs=1e-5)


def test_rollout_entropy_of_uniform_attention_is_one_at_every_depth():
    model = get_model("hybrid_vit", 2).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight.zero_()
            block.attn.qkv.bias.zero_()
    table = rollout_entropy(model, _images(2, 64))
    assert list(table["layer"]) == [1, 2, 3, 4]
    np.testing.assert_allclose(table["normalised"], 1.0, atol=1e-6)


def test_fuse_heads_knows_mean_max_min():
    w = torch.arange(8.0).reshape(2, 2, 2)[None]        # [1, H=2, 2, 2]
    torch.testing.assert_close(fuse_heads(w, "max"), w[:, 1])
    torch.testing.assert_close(fuse_heads(w, "min"), w[:, 0])
    torch.testing.assert_close(fuse_heads(w), w.mean(1))
