"""A small hybrid Vision Transformer: a convolutional stem, then transformer blocks on its grid.

A pure ViT (Dosovitskiy et al. 2021) cuts the image into 16 x 16 patches and learns everything
else from data; on a few hundred phantom images and a CPU budget it does not get far. The hybrid
variant of the same paper (§3.1, "Hybrid Architecture") feeds the transformer the feature map of
a CNN instead of raw patches. Here the stem is three stride-2 convolution blocks (8 x
downsampling, so the ``cpu`` profile's 96 px image gives a 12 x 12 grid of 144 tokens (112 px:
14 x 14, the grid the position embeddings are learned for), each seeing an 8 x 8 pixel
cell plus its convolutional context), followed by a learned class token, learned position
embeddings and ``depth`` pre-norm transformer blocks. The class token's final state, after a
LayerNorm, goes to one linear head.

The attention weights of every block pass through ``block.attn.attn_probs`` (an
:class:`~torch.nn.Identity`), so a forward hook reads them without changing the model, and a
tensor hook on the same output reads their gradient: that is all the attention family of
:mod:`medxai_lite.explain.attention` needs.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["HybridViT", "Attention", "Block"]


def _global_module_hooks() -> bool:
    """Whether a hook registered on every module (``torch.nn.modules.module.register_module_forward_hook``,
    as some profilers and explainers do) is active: it must see ``attn_probs`` too."""
    from torch.nn.modules import module as _m

    return bool(_m._global_forward_hooks or _m._global_forward_pre_hooks)


class Attention(nn.Module):
    r"""Multi-head self-attention, written out so its weights can be read.

    .. math:: A_h = \mathrm{softmax}\big(Q_h K_h^\top / \sqrt{d}\big), \qquad
              \mathrm{out} = W_o\,[A_1 V_1; \dots; A_H V_H]

    ``attn_probs`` is the identity applied to :math:`A` of shape ``(batch, heads, tokens, tokens)``;
    rows are queries, columns keys, every row sums to 1.

    When nothing hooks ``attn_probs`` (training, plain inference) the same product runs through
    :func:`torch.nn.functional.scaled_dot_product_attention`, which never materialises :math:`A`
    and its gradient as separate tensors: a training step of the book's ViT (batch 32 at 112 px)
    takes about 10-25 % less time on a 2-core CPU (``benchmarks/bench_attention.py``). With a hook
    on ``attn_probs`` (the attention explainers) :math:`A` is computed explicitly and passed
    through it; both paths agree to float32 rounding (``tests/test_attention.py``).
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_probs = nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if (self.attn_probs._forward_hooks or self.attn_probs._forward_pre_hooks or self.attn_probs._backward_hooks
                or _global_module_hooks()):
            attn = self.attn_probs(((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1))
            out = attn @ v
        else:
            out = nn.functional.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))``, then ``x + MLP(LN(x))`` (GELU)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())


class HybridViT(nn.Module):
    """Convolutional stem (8 x downsampling), class token, ``depth`` transformer blocks, linear head.

    Parameters
    ----------
    num_classes : int
    dim, depth, heads : int
        Token width, number of transformer blocks, attention heads per block (defaults: 96, 4, 4;
        about 0.4 M parameters, the size of :class:`~medxai_lite.models.SmallCNN`).
    grid : int
        Token grid side the position embeddings are learned for (14: a 112 px image). Another
        input size works too: the embeddings are interpolated bicubically to its grid, as
        Dosovitskiy et al. (2021, §3.2) do when fine-tuning at a higher resolution.

    The CAM family reads ``stem`` (the last convolution block, a ``dim``-channel map on the
    token grid); the attention family reads ``blocks[i].attn.attn_probs``.
    """

    patch = 8   # pixels per token side (the stem's total stride)

    def __init__(self, num_classes: int = 2, dim: int = 96, depth: int = 4, heads: int = 4, grid: int = 14,
                 mlp_ratio: float = 2.0):
        super().__init__()
        self.stem = nn.Sequential(_conv(3, 32, 2), _conv(32, 64, 2), _conv(64, dim, 2))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.grid = grid
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def _positions(self, h: int, w: int) -> torch.Tensor:
        if (h, w) == (self.grid, self.grid):
            return self.pos_embed
        cls, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        grid = grid.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        grid = nn.functional.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        return torch.cat([cls, grid.flatten(2).transpose(1, 2)], dim=1)

    def tokens_grid(self, image_size: int) -> tuple[int, int]:
        """``(h, w)`` of the token grid for a square input of ``image_size`` pixels."""
        side = image_size
        for _ in range(3):
            side = (side - 1) // 2 + 1     # a 3x3 convolution, stride 2, padding 1
        return side, side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.stem(x)
        b, d, h, w = feats.shape
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), feats.flatten(2).transpose(1, 2)], dim=1)
        tokens = self.blocks(tokens + self._positions(h, w))
        return self.head(self.norm(tokens)[:, 0])

