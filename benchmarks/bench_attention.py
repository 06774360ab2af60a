"""Cost of the hybrid ViT and of the attention family on this machine.

Prints (medians over interleaved repeats):

1. one training step (forward, backward, AdamW step) of a batch of 32 at the ``cpu`` profile's 96 px: the hybrid ViT
   against the book's default ResNet14 (output stride 8) and the dilated ResNet18 (16), and the ratios;
   the ViT's fused attention (scaled_dot_product_attention, unhooked) against its explicit one;
2. seconds per image of each attention method at that size (12 x 12 tokens) and the ratio
   flow / rollout (flow solves one maximum-flow problem per token);
3. ``explain("attention_rollout")`` against one bare forward pass of the same batch (the hooks
   and the matrix products are all it adds).

Run:  python benchmarks/bench_attention.py [--size 96 --batch 8 --repeats 5]
Random weights; nothing is downloaded.
"""
from __future__ import annotations

import argparse
import torch


def _median_seconds(fn, repeats: int) -> float:
    from bench_explain import interleaved_medians   # this folder is on sys.path when a script runs

    return interleaved_medians({"fn": fn}, repeats)["fn"]


def main() -> None:
    from medxai_lite.explain import explain, list_methods
    from medxai_lite.models import get_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)

    x32, y32 = torch.rand(32, 3, args.size, args.size), torch.randint(0, 2, (32,))
    steps = {}
    for arch, extra in (("hybrid_vit", {}), ("hybrid_vit explicit", {}), ("resnet14", {"output_stride": 8}),
                        ("resnet18", {"output_stride": 16})):
        model = get_model(arch.split()[0], 2, **extra).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        if arch.endswith("explicit"):     # a hook on attn_probs makes every block compute A explicitly
            for block in model.blocks:
                block.attn.attn_probs.register_forward_hook(lambda module, inputs, output: None)

        def step(model=model, opt=opt):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x32), y32).backward()
            opt.step()
        steps[arch] = _median_seconds(step, args.repeats)
    print(f"training step, batch 32 at {args.size} px: hybrid ViT {steps['hybrid_vit']:.3f} s, "
          f"ResNet14 (stride 8) {steps['resnet14']:.3f} s, ResNet18 (stride 16) {steps['resnet18']:.3f} s; ratio ViT / ResNet14 "
          f"{steps['hybrid_vit'] / steps['resnet14']:.2f}, ViT / ResNet18 {steps['hybrid_vit'] / steps['resnet18']:.2f}")
    print(f"hybrid ViT with the attention matrices computed explicitly (hooked, as the explainers run it): "
          f"{steps['hybrid_vit explicit']:.3f} s; fused / explicit {steps['hybrid_vit'] / steps['hybrid_vit explicit']:.2f}")

    vit = get_model("hybrid_vit", 2).eval()
    x = torch.rand(args.batch, 3, args.size, args.size)
    per_image = {}
    for method in list_methods("Attention-based"):
        per_image[method] = _median_seconds(lambda m=method: explain(m, vit, x, targets=0),
                                            max(1, args.repeats // (3 if method == "attention_flow" else 1)))
        per_image[method] /= args.batch
        print(f"{method:20s} {per_image[method]:.4f} s per image")
    print(f"flow / rollout: {per_image['attention_flow'] / per_image['attention_rollout']:.0f}x")

    def bare():
        with torch.no_grad():
            vit(x)
    forward = _median_seconds(bare, args.repeats)
    print(f"rollout / one bare forward pass of the batch: "
          f"{per_image['attention_rollout'] * args.batch / forward:.2f}x")


if __name__ == "__main__":
    main()
