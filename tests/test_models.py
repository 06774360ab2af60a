"""Model zoo, training, evaluation and the trained-model cache."""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import medxai_lite as mx
from medxai_lite.models import ARCHS, PAPER_ARCHS, evaluate, get_model, target_layer
from medxai_lite.models import train as train_mod

TINY = dict(image_size=32, n_train=48, n_val=24, n_test=24, epochs=1, batch_size=16)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_builds_with_its_head_and_target_layer(arch):
    torch.manual_seed(0)
    model = get_model(arch, num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 3)
    layer = target_layer(model, arch)
    assert any(layer is m for m in model.modules())
    # the target layer is the last block with a spatial map
    feats = {}
    h = layer.register_forward_hook(lambda m, i, o: feats.setdefault("a", o))
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 64))
    h.remove()
    assert feats["a"].dim() == 4 and feats["a"].shape[-1] >= 1


def test_paper_archs_are_the_four_cnns_of_the_experiment():
    assert PAPER_ARCHS == ("resnet50", "densenet121", "vgg16", "efficientnet_b0")


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="arch.*resnet50"):
        get_model("resnet51", 2)
    with pytest.raises(ValueError, match="num_classes"):
        get_model("resnet18", 1)
    with pytest.raises(ValueError, match="arch"):
        target_layer(nn.Linear(2, 2), "mlp")


def test_pretrained_offline_warns_once_and_falls_back(monkeypatch):
    import torchvision

    calls = []

    def offline(*args, **kwargs):
        calls.append(1)
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.models.ResNet18_Weights.DEFAULT.__class__, "get_state_dict",
                        lambda self, *a, **k: offline())
    monkeypatch.setattr("medxai_lite.models.zoo._warned_offline", False)
    with pytest.warns(RuntimeWarning, match="random initialisation"):
        model = get_model("resnet18", 2, pretrained=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_model("resnet18", 2, pretrained=True)  # second time: no second warning
    assert len(calls) == 2 and model.fc.out_features == 2


class _Constant(nn.Module):
    def __init__(self, k, num_classes):
        super().__init__()
        self.k, self.num_classes = k, num_classes
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros(len(x), self.num_classes) + self.dummy
        out[:, self.k] = 1.0
        return out


def test_evaluate_known_answer():
    ds = mx.load_dataset("phantom-skin", "test", image_size=32, n=10)
    res = evaluate(_Constant(0, 2), ds)
    n0 = int((ds.labels == 0).sum())
    assert res["accuracy"] == pytest.approx(n0 / 10)
    assert res["confusion"] == [[n0, 0], [10 - n0, 0]]
    assert res["per_class_f1"][1] == 0.0
    assert res["macro_f1"] == pytest.approx(np.mean(res["per_class_f1"]))


def test_training_is_cached_and_deterministic(tmp_cache, monkeypatch):
    m1 = mx.get_trained_model("phantom-skin", "small_cnn", progress=False, **TINY)
    files = sorted(p.name for p in (tmp_cache / "models").iterdir() if not p.name.endswith(".lock"))
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".pt")
    assert (tmp_cache / "models" / (files[1] + ".lock")).exists()      # the training lock (cache_lock) stays
    meta = json.loads((tmp_cache / "models" / files[0]).read_text())
    assert meta["settings"]["image_size"] == 32 and meta["classes"] == ["benign naevus", "melanoma"]

    def no_training(*a, **k):
        raise AssertionError("should have loaded from the cache")

    monkeypatch.setattr(train_mod, "train_model", no_training)
    m2 = mx.get_trained_model("phantom-skin", "small_cnn", progress=False, **TINY)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())
    assert m2.report.test == m1.report.test and not m2.training
    monkeypatch.undo()

    # same seed in a fresh cache: the same weights
    monkeypatch.setenv("MEDXAI_CACHE", str(tmp_cache.parent / "other"))
    m3 = mx.get_trained_model("phantom-skin", "small_cnn", progress=False, **TINY)
    for a, b in zip(m1.state_dict().values(), m3.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())


def test_cache_key_changes_with_every_setting():
    base = train_mod._resolve("phantom-skin", "cpu", {})
    k = train_mod.cache_key("phantom-skin", "resnet18", "cpu", 0, base)
    assert k != train_mod.cache_key("phantom-skin", "resnet18", "cpu", 1, base)
    assert k != train_mod.cache_key("phantom-skin", "resnet50", "cpu", 0, base)
    assert k != train_mod.cache_key("phantom-skin", "resnet18", "cpu", 0, {**base, "epochs": 2})
    assert k != train_mod.cache_key("phantom-chest-xray", "resnet18", "cpu", 0, base)
    other = "fp32" if base["precision"] == "bf16" else "bf16"
    assert k != train_mod.cache_key("phantom-skin", "resnet18", "cpu", 0, {**base, "precision": other})


def test_auto_precision_is_resolved_before_the_cache_key(monkeypatch):
    """"auto" never reaches the key: a model trained in bf16 and one in fp32 cannot share a cache entry."""
    if torch.cuda.is_available():      # a GPU (or tests/fakecuda.py's pretend one): "auto" resolves for it
        pytest.skip("checks how 'auto' resolves on a CPU-only machine")
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda native=native: native)
        assert train_mod.training_precision("cpu") == expected
        assert train_mod._resolve("phantom-skin", "cpu", {})["precision"] == expected
        assert train_mod._resolve("phantom-skin", "cpu", {"precision": "fp32"})["precision"] == "fp32"
    assert train_mod.training_precision("cuda") == "fp32"      # a GPU trains in float32
    with pytest.raises(ValueError, match="precision"):
        train_mod._resolve("phantom-skin", "cpu", {"precision": "fp16"})
    with pytest.raises(ValueError, match="precision"):
        train_mod.fit(nn.Linear(2, 2), torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1), lambda e: [], 1,
                      precision="auto")


def test_bf16_training_computes_in_bfloat16_and_keeps_float32_weights():
    """precision="bf16": the layers run in bfloat16 under autocast, the weights and their updates stay
    float32, and the model still learns a separable problem; "fp32" runs in float32 throughout."""
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
        seen = []
        model[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        train_mod.fit(model, opt, lambda epoch: [(x, y)], 30, precision=precision)
        assert set(seen) == {dtype}
        assert all(p.dtype == torch.float32 for p in model.parameters())
        with torch.no_grad():
            assert (model(x).argmax(1) == y).float().mean() > 0.9


def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_cache):
    mx.get_trained_model("phantom-chest-xray", "small_cnn", progress=False, **TINY)
    weights = next((tmp_cache / "models").glob("*.pt"))
    weights.write_bytes(b"not a checkpoint")
    with pytest.warns(RuntimeWarning, match="retraining"):
        model = mx.get_trained_model("phantom-chest-xray", "small_cnn", progress=False, **TINY)
    assert torch.load(weights, weights_only=True).keys() == model.state_dict().keys()
    assert not list((tmp_cache / "models").glob("*.part"))


def test_unwritable_cache_names_the_variable(tmp_path, monkeypatch):
    if os.geteuid() == 0:
        target = tmp_path / "file-not-folder"
        target.write_text("x")  # root can write anywhere, so use a path that cannot be a folder
        monkeypatch.setenv("MEDXAI_CACHE", str(target / "sub"))
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        monkeypatch.setenv("MEDXAI_CACHE", str(ro))
    with pytest.raises(PermissionError, match="MEDXAI_CACHE"):
        mx.get_trained_model("phantom-skin", "small_cnn", progress=False, **TINY)


@pytest.mark.parametrize("kwargs, param", [
    (dict(dataset="phantom-lung"), "dataset"),
    (dict(arch="resnet"), "arch"),
    (dict(profile="gpu"), "profile"),
    (dict(learning_rate=0.1), "learning_rate"),
])
def test_bad_training_arguments(kwargs, param, tmp_cache):
    args = {"dataset": "phantom-skin", "arch": "small_cnn", **kwargs}
    with pytest.raises(ValueError, match=param):
        mx.get_trained_model(progress=False, **args)
    assert not (tmp_cache / "models").exists() or not list((tmp_cache / "models").iterdir())


def test_profiles():
    assert mx.PROFILES["paper"]["image_size"] == 224 and mx.PROFILES["paper"]["pretrained"]
    assert not mx.PROFILES["cpu"]["pretrained"]


#: Targets the default ResNet14s do not meet (empty now; the record below is how the brain pointing
#: game got there, see its last paragraph), by the arithmetic they were trained in (the cpu
#: profile's ``precision="auto"`` trains in bfloat16 where the CPU has it natively, so the cache
#: key, the weights and the figures differ between machines). cpu profile: 96 px, output stride 8,
#: a 12 x 12 grid; 640 images, up to 6 epochs. Measured from a cold cache, brain / skin / chest:
#: - fp32, a 2-core AVX2 CPU (2026-12-05): accuracy 0.983 / 0.983 / 0.998, pointing game
#:   0.66 / 0.94 / 0.88, relevance mass 3.30x / 2.06x / 2.47x random;
#: - bf16, a 2-core AVX-512 BF16 CPU (2026-12-05): accuracy 0.978 / 0.998 / 1.000, pointing game
#:   0.69 / 0.94 / 0.78, relevance mass 3.35x / 2.15x / 2.40x random.
#: The brain pointing game misses in both against a ceiling of 0.94 for the grid: most misses peak
#: one cell from a small lesion (tolerant, 15 px at 224 px: 0.94). The chest pointing game missed
#: by one image of 32 in bf16 (25 hits where 26 are needed; tolerant 1.00).
#: Training revision 2 (channels-last steps, the same arithmetic in another order), on the AVX-512
#: BF16 CPU: bf16 accuracy 0.985 / 0.988 / 0.998, pointing game 0.56 / 0.97 / 0.88, relevance mass
#: 3.44x / 2.15x / 2.41x; fp32 accuracy 0.980 / 0.990 / 0.993, pointing game 0.63 / 0.97 / 0.84,
#: relevance mass 3.25x / 2.08x / 2.39x. Chest now passes in both; brain still misses.
#: The strict pointing game is one draw per trained network (bf16, 2026-12-05, seeds 0 / 1 / 2,
#: ``bench_default_models.py --seeds 0 1 2``): brain 0.69 / 0.84 / 0.34 at accuracy 0.978-0.990,
#: tolerant 0.94 / 0.97 / 0.96, relevance mass 3.4x-3.8x random; skin 0.94 / 0.81 (seeds 0 / 1); chest
#: 0.78 / 0.81 / 1.00. A pituitary tumour sits in the sella in every image (about 1 px of spread),
#: so any cell that sees the sella can carry its evidence: seed 2 peaks one cell below and left of
#: it on every pituitary image. Jittering the head's position (2.4 px sd instead of 0.7 px) did
#: not help (brain 0.63 / 0.66 for seeds 0 / 1), nor did 960 images (0.69) or 112 px (0.66).
#: Why: global pooling makes the class score blind to where a feature fires, so a network is free to
#: learn its lesion evidence one cell off the lesion, and which way is the seed's choice. Levers
#: measured on brain (bf16, seeds 0 / 1 / 2, 2026-12-05): random shifts of up to 8 px in training
#: 0.44 / 0.53 / 0.50 (chest 0.94 / 0.91 / 0.88, but skin relevance mass fell to 1.96x-1.98x);
#: shifts and horizontal flips 0.34 / 0.69 / 0.53; global max pooling 0.50 / 0.44 / 0.44 (tight maps,
#: relevance mass 3.7x-6.5x, peaks still a cell off); Grad-CAM on layer2 or layer3.0 0.41-0.75 over
#: ten networks; a network whose cells see only 29 px 0.03 / 0.09 / 0.22 (its maps peak on the
#: lesion's rim and on the ventricles; relevance mass 7.4x-8.5x).
#: Also measured (2026-12-05, training revision 2, bf16, seeds 0 / 1 / 2): layer3 un-strided without
#: dilation (smaller receptive field) 0.53 / 0.47 / 0.47; the library's own bilinear placement of the
#: cells (half a cell down and right of their receptive-field centres, ``align=False``) 0.81 / 0.72 /
#: 0.50 against 0.56 aligned, but the centre cell's measured effective receptive field (centroid of
#: |d activation / d input| over 48 test images) sits 1.5-2.3 px above and within 1.1 px of the aligned
#: centre, so that gain is a shift that suits two seeds, not better geometry; pytorch-grad-cam's
#: aug_smooth (flip and scale averaging) 0.88 / 0.84 / 0.53 unaligned.
#: Also measured (2026-12-05, revision 2, bf16, brain, seeds 0 / 1 / 2): layer3's four convolutions
#: dilated 1, 2, 2, 1 (the gridding-free end of Yu et al.'s dilated residual networks) 0.72 / 0.34 /
#: 0.28; 1, 2, 3, 1 (hybrid dilation, Wang et al. 2018) 0.38 / 0.50 / 0.44; 1, 2, 1, 2 0.56 / 0.62 /
#: 0.62; output stride 4 (a 24 x 24 grid of 4 px cells, ceiling 1.00, three times the training
#: time) 0.62 / 0.59 / 0.47; anti-aliased downsampling (a [1, 2, 1] blur before each subsampling,
#: Zhang 2019) 0.81 / 0.59 / 0.44; twelve epochs instead of six 0.53 / 0.72 / 0.50. None moves the
#: mean. What the misses share (``metrics.peak_plateau``, seed 0): the pixels within 5 % of the
#: peak cover a median 54 px on brain, 81 on skin, 103 on chest, so the maps are about as sharp on
#: the three; the median lesion covers 148, 1,404 and 804 px. The plateau's mean share in the
#: lesion is 0.61 / 0.97 / 0.90 against a strict pointing game of 0.56 / 0.97 / 0.88: on brain a
#: strict hit is a draw among near-tied pixels, two fifths of which lie off a lesion the map has
#: found (relevance mass 3.4x random). None of the levers in this paragraph reached 0.8 on more
#: than one seed of three.
#: Per class (``bench_default_models.py --cached --per-class 96``, seed 0, bf16): glioma 0.71,
#: meningioma 0.62, pituitary 0.40 (ceilings 0.97 / 0.97 / 0.83). A pituitary tumour sits in the
#: sella, at the same place relative to the cells in every image, between two cell rows: at 97 px the
#: peak's offset from it varies by about 1 px (sd 1.2 px), so a network hits or misses nearly all of
#: them alike; at 96 px (seed 0) it is (-1.9, -4.3) px on average, sd 2-4 px. Also measured (2026-12-05, bf16, brain,
#: seeds 0 / 1 / 2, strict PG on the first 32 / on 96 lesion images): 97 px, whose 13 x 13 grid is
#: mirror-symmetric (every stride-2 step samples both edges) 0.56 / 0.47 / 0.50, pituitary 0.03-0.20
#: with the peak 4.9 px below the lesion; 105 px 0.41 / 0.69 / 0.34; a flip-equivariance loss on
#: layer3 (||F(flip x) - flip F(x)||^2 over the mean square, weight 1, each batch also flipped;
#: Guo et al. 2019's attention consistency; twice the training time) at 97 px, horizontal flips
#: 0.88 / 0.44 / 0.44, horizontal or vertical 0.59 / 0.59 / 0.62 (on 96 images 0.69 / 0.70 / 0.72
#: against 0.55-0.57 without: glioma 0.88-0.97, meningioma 0.72-0.91, pituitary still 0.23-0.40,
#: peaking a row below, toward the ventricles' frontal horns); averaging the map with the
#: flipped image's (test-time, not the default Grad-CAM) at 96 px 0.84 / 0.84 / 0.66 horizontally,
#: 0.81 / 0.88 / 0.72 over both flips, but at 97 px 0.59 / 0.50 / 0.47: at 96 px the flipped grid
#: sits 7 px off the original, so the average moves the peak rather than symmetrising it.
#: Also measured (2026-12-05, bf16, brain, seeds 0 / 1 / 2, strict PG on the first 32; per class on
#: 96): the lateral ventricles drawn lower, so that the frontal horns no longer touch the sella (the
#: pituitary misses had peaked a row below, towards the horns), 5 px lower 0.53 / 0.41 / 0.50;
#: 10 px lower 0.75 / 0.66 / 0.63 (pituitary 0.80 / 0.67 / 0.47, meningioma 0.47-0.72, peaks pulled
#: towards the skull); 10 px lower with the flip-equivariance loss (horizontal or vertical) at
#: 96 px 0.47 / 0.50 / 0.47, at 97 px 0.59 / 0.72 / 0.62. Not adopted: no seed reaches 0.8, and no
#: calibrated source says where the horns should sit relative to the sella in a one-slice phantom.
#: Before (112 px, stride 16, 7 x 7, fp32): pointing game 0.16 / 0.78 / 0.31, relevance mass 3.3x /
#: 1.7x / 2.2x, the brain ceiling 0.41 (most brain lesions held no cell centre).
#: Met (2026-12-05): the lever was the upsampling, not the network. A bilinear interpolant is
#: largest on a cell centre, so every strict miss above was a choice between cell centres, and a
#: lesion between two cells that both fire could not hold the peak; cubic convolution
#: (``medxai_lite.explain.cam.UPSAMPLE_MODE``, Keys 1981) lets the peak fall between them. The same
#: cached networks, strict pointing game on the first 32 (on 96) lesion images, bicubic against
#: bilinear: brain bf16 seeds 0 / 1 / 2 0.81 / 0.81 / 0.78 (0.79 / 0.80 / 0.69) against 0.56 / 0.56 /
#: 0.56 (0.58 / 0.64 / 0.57); brain fp32 (AVX-512 CPU, fp32 steps) seeds 0 / 1 0.84 / 0.88; skin
#: seed 0 0.97 both; chest seed 0 0.97 against 0.88 (0.94 against 0.82); relevance mass a little
#: higher (brain 3.52x against 3.44x random). Seed 2's 0.78 says the margin on brain is small.
#: The value is whether the expected failure is strict (an unexpected pass fails the test).
KNOWN_MISSES: dict = {}


def _default_model_figures(dataset):
    from medxai_lite.data import lesion_batch
    from medxai_lite.metrics import pointing_game, random_maps, relevance_mass_accuracy

    model = mx.get_trained_model(dataset, progress=False)          # the book's default model
    size = model.report.settings["image_size"]
    test = mx.load_dataset(dataset, "test", image_size=size, n=model.report.settings["n_test"])
    batch = lesion_batch(test, 32)
    x, y, masks = batch["image"], batch["label"], batch["mask"].numpy()
    maps = mx.explain("gradcam", model, x, targets=y).maps             # true class, default layer
    random = random_maps(x, grid="pixel", seed=0)                       # uniform noise per pixel
    rma = np.nanmean(relevance_mass_accuracy(None, x, y, maps, masks))
    return {"accuracy": model.report.test["accuracy"],
            "pointing_game": np.nanmean(pointing_game(None, x, y, maps, masks)),
            "rma_ratio": rma / np.nanmean(relevance_mass_accuracy(None, x, y, random, masks))}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["phantom-brain-mri", "phantom-skin", "phantom-chest-xray"])
@pytest.mark.parametrize("figure, target", [("accuracy", 0.90), ("pointing_game", 0.80), ("rma_ratio", 2.0)])
def test_default_models_can_be_right(dataset, figure, target, request):
    """The cpu profile's promise on the book's default models (shares the book's cache): test
    accuracy >= 0.90, and Grad-CAM for the true class on the first 32 lesion images pointing
    into the lesion >= 80 % of the time with >= 2x the relevance mass of a random map.
    (Training time is a benchmark figure: benchmarks/bench_default_models.py.)"""
    key = (dataset, figure, mx.models.train.training_precision())        # what "auto" trains in here
    if key in KNOWN_MISSES:
        request.applymarker(pytest.mark.xfail(strict=KNOWN_MISSES[key],
                                              reason=f"measured below target in {key[2]}; see KNOWN_MISSES"))
    value = _default_model_figures(dataset)[figure]
    assert value >= target, f"{dataset}: {figure} {value:.3f} < {target}"


def test_fit_trains_channels_last_on_cpu_and_hands_back_the_default_layout(monkeypatch):
    """The loop sees channels-last batches and weights; afterwards every weight is contiguous again,
    so the model computes exactly as the same weights loaded into a fresh network do."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 2))
    x, y = torch.randn(8, 3, 12, 12), torch.tensor([0, 1] * 4)
    seen = []
    model[0].register_forward_pre_hook(lambda m, inp: seen.append(
        (inp[0].is_contiguous(memory_format=torch.channels_last) and not inp[0].is_contiguous(),
         m.weight.is_contiguous(memory_format=torch.channels_last) and not m.weight.is_contiguous())))
    train_mod.fit(model, torch.optim.SGD(model.parameters(), lr=0.1), lambda epoch: [(x, y)], 2)
    assert seen == [(True, True)] * 2
    assert all(p.is_contiguous() for p in model.parameters())
    fresh = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 2))
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh(x), model(x))
    # a device named by a string, as x.to() accepts it, trains the same way
    seen.clear()
    train_mod.fit(model, torch.optim.SGD(model.parameters(), lr=0.1), lambda epoch: [(x, y)], 1, device="cpu")
    assert seen == [(True, True)] and all(p.is_contiguous() for p in model.parameters())
    # the training loop's revision is part of the cache key
    base = dict(mx.PROFILES["cpu"])
    key = train_mod.cache_key("phantom-skin", "resnet14", "cpu", 0, base)
    monkeypatch.setattr(train_mod, "TRAINING_REVISION", train_mod.TRAINING_REVISION + 1)
    assert train_mod.cache_key("phantom-skin", "resnet14", "cpu", 0, base) != key


def test_fit_is_the_one_training_loop():
    """One optimiser step per batch on the mean cross-entropy; the scheduler steps once per epoch;
    on_epoch_end sees the epoch's mean loss and can stop early."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    x, y = torch.randn(8, 4), torch.tensor([0, 1] * 4)
    start = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    losses = []

    def on_epoch_end(epoch, loss):
        losses.append(loss)
        return epoch == 2                                               # stop after the second epoch

    run = train_mod.fit(model, opt, lambda epoch: [(x[:4], y[:4]), (x[4:], y[4:])], 5, scheduler=sched,
                        on_epoch_end=on_epoch_end)
    assert run == 2 and len(losses) == 2 and opt.param_groups[0]["lr"] == pytest.approx(0.125)
    # the same two steps by hand: the first epoch's loss is the mean over its batches, before each step
    ref = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        for p, q in zip(ref.parameters(), start):
            p.copy_(q)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.5)
    first = []
    for xb, yb in [(x[:4], y[:4]), (x[4:], y[4:])]:
        ref_opt.zero_grad()
        loss = nn.functional.cross_entropy(ref(xb), yb)
        loss.backward()
        ref_opt.step()
        first.append(loss.item())
    assert losses[0] == pytest.approx(np.mean(first))


@pytest.mark.parametrize("scores, ran, best", [
    ([0.5, 1.0, 0.9, 1.0, 1.0], 2, 2),     # perfect at epoch 2: nothing later can be kept, stop there
    ([0.5, 0.9, 0.8, 0.95, 0.7], 5, 4),    # never perfect: all epochs (patience 5), best is epoch 4
    ([0.6, 0.5, 0.5, 0.5, 0.5], 3, 1),     # patience 2 still stops after two epochs without progress
])
def test_training_stops_at_a_perfect_validation_score(monkeypatch, scores, ran, best):
    from medxai_lite.data.base import ArrayDataset

    rng = np.random.default_rng(0)
    data = ArrayDataset(name="toy", split="train", images=rng.integers(0, 255, (8, 8, 8, 3), dtype=np.uint8),
                        labels=[0, 1] * 4, classes=["a", "b"], modality="toy")
    calls = iter(scores)
    monkeypatch.setattr(train_mod, "evaluate", lambda *a, **k: {"loss": 0.0, "accuracy": 0.0,
                                                                "macro_f1": next(calls)})
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    patience = 2 if ran == 3 else 5
    _, history, best_epoch = train_mod.train_model(model, data, data, epochs=5, batch_size=4, lr=1e-3,
                                                   patience=patience, progress=False)
    assert len(history) == ran and best_epoch == best


def test_label_randomisation_training_uses_the_same_loop(monkeypatch):
    from medxai_lite.metrics import make_train_fn

    calls = []
    real = train_mod.fit

    def spy(model, optimizer, batches, epochs, **kw):
        calls.append(epochs)
        return real(model, optimizer, batches, epochs, **kw)

    monkeypatch.setattr(train_mod, "fit", spy)
    images, labels = torch.randn(12, 3, 16, 16), torch.tensor([0, 1, 2] * 4)
    model = make_train_fn(epochs=2, batch_size=4)(images, labels)
    assert calls == [2] and not model.training


def test_zero_init_residual_makes_every_resnet_block_the_identity():
    torch.manual_seed(0)
    model = get_model("resnet18", num_classes=2, zero_init_residual=True).eval()
    blocks = [b for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer]
    assert all(torch.count_nonzero(b.bn2.weight) == 0 for b in blocks)
    # a block without a downsampling branch then returns relu(x) for any input
    x = torch.randn(1, 64, 8, 8)
    assert torch.allclose(model.layer1[0](x), torch.relu(x))
    # the default keeps torchvision's initialisation; other families ignore the option
    assert torch.count_nonzero(get_model("resnet18", num_classes=2).layer1[0].bn2.weight) > 0
    dense = get_model("densenet121", num_classes=2, zero_init_residual=True)
    assert all(torch.count_nonzero(m.weight) > 0 for m in dense.modules() if isinstance(m, nn.BatchNorm2d))


def test_recalibrate_batchnorm_gives_the_population_statistics():
    ds = mx.load_dataset("phantom-skin", "train", image_size=32, n=40)
    images = torch.stack([ds[i]["image"] for i in range(len(ds))])
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3 * 32 * 32, 2)).eval()
    before = [p.detach().clone() for p in model.parameters()]
    assert train_mod.recalibrate_batchnorm(model, ds, batch_size=16) == 1
    bn = model[0]
    # PyTorch's cumulative average (momentum=None): the plain mean over the batches of 16, 16
    # and 8 images of each batch's per-channel mean and unbiased variance
    batches = images.split(16)
    expected_mean = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    assert torch.allclose(bn.running_mean, expected_mean, atol=1e-5)
    expected_var = torch.stack([b.var(dim=(0, 2, 3), unbiased=True) for b in batches]).mean(0)
    assert torch.allclose(bn.running_var, expected_var, atol=1e-5)
    assert bn.momentum == 0.1 and not model.training   # settings and mode restored
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    # on the first 16 images only: the first batch's statistics
    train_mod.recalibrate_batchnorm(model, ds, batch_size=16, max_images=16)
    assert torch.allclose(bn.running_mean, batches[0].mean(dim=(0, 2, 3)), atol=1e-5)
    with pytest.raises(ValueError, match="max_images"):
        train_mod.recalibrate_batchnorm(model, ds, max_images=1)
    # no BatchNorm: nothing to do
    assert train_mod.recalibrate_batchnorm(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 2)), ds) == 0


def test_precise_bn_is_a_training_setting(tmp_cache):
    base = train_mod._resolve("phantom-skin", "cpu", {})
    assert base["precise_bn"] == 0 and base["zero_init_residual"] is False
    k = train_mod.cache_key("phantom-skin", "resnet50", "cpu", 0, base)
    assert k != train_mod.cache_key("phantom-skin", "resnet50", "cpu", 0, {**base, "precise_bn": 128})
    m = mx.get_trained_model("phantom-skin", "resnet18", progress=False, precise_bn=16, **TINY)
    assert m.report.settings["precise_bn"] == 16


@pytest.mark.parametrize("arch", PAPER_ARCHS + ("resnet18",))
def test_output_stride_16_doubles_the_cam_grid(arch):
    from medxai_lite.models import cam_grid

    torch.manual_seed(0)
    plain = get_model(arch, num_classes=2)
    fine = get_model(arch, num_classes=2, output_stride=16)
    assert cam_grid(plain, arch, 224) == (7, 7) and cam_grid(fine, arch, 112) == (7, 7)
    assert cam_grid(fine, arch, 224) == (14, 14)
    # the same parameters: weights (e.g. ImageNet's) load into either
    fine.load_state_dict(plain.state_dict())
    assert fine.training            # cam_grid leaves the mode as it was
    with torch.no_grad():
        assert fine.eval()(torch.rand(1, 3, 112, 112)).shape == (1, 2)


def test_resnet18_output_stride_keeps_the_receptive_field():
    """layer4 of the stride-16 ResNet18 is dilated, so one output cell sees as far as before."""
    torch.manual_seed(0)
    fine = get_model("resnet18", num_classes=2, output_stride=16)
    assert fine.layer4[0].conv1.stride == (1, 1) and fine.layer4[0].downsample[0].stride == (1, 1)
    assert fine.layer4[0].conv2.dilation == (2, 2) and fine.layer4[1].conv2.dilation == (2, 2)
    assert fine.layer4[0].conv1.dilation == (1, 1)


def test_output_stride_bad_values():
    with pytest.raises(ValueError, match="output_stride"):
        get_model("resnet18", 2, output_stride=4)
    with pytest.raises(ValueError, match="output_stride"):
        get_model("small_cnn", 2, output_stride=16)
    with pytest.raises(ValueError, match="image_size"):
        mx.cam_grid(get_model("resnet18", 2), "resnet18", 0)


def test_the_hybrid_vit_trains_with_its_own_settings_and_caches(tmp_cache):
    settings = train_mod._resolve("phantom-skin", "cpu", {}, "hybrid_vit")
    assert settings["weight_decay"] == 0.05 and settings["patience"] == settings["epochs"]
    assert settings["precision"] == "fp32"          # bfloat16 autocast made its CPU steps slower
    assert train_mod._resolve("phantom-skin", "cpu", {}, "resnet18") == train_mod._resolve("phantom-skin", "cpu", {})
    # an explicit override still wins over the architecture's settings
    assert train_mod._resolve("phantom-skin", "cpu", {"epochs": 1}, "hybrid_vit")["epochs"] == 1
    m1 = mx.get_trained_model("phantom-skin", "hybrid_vit", progress=False, **TINY)
    assert m1.report.settings["weight_decay"] == 0.05 and not m1.training
    m2 = mx.get_trained_model("phantom-skin", "hybrid_vit", progress=False, **TINY)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    assert m2.report.cache_key == m1.report.cache_key


def test_resnet14_is_resnet18_without_its_fourth_stage():
    """The book's default network: ResNet18's stem and first three stages, a 256-way head input,
    the last block downsampling by 16 (7 x 7 at 112 px), recognised as its own architecture."""
    import torchvision

    from medxai_lite.models import DEFAULT_ARCH, cam_grid, infer_arch

    assert DEFAULT_ARCH == "resnet14"
    torch.manual_seed(0)
    model = get_model("resnet14", 3).eval()
    ref = torchvision.models.resnet18()
    assert isinstance(model.layer4, nn.Identity) and model.fc.in_features == 256
    own = {k for k in model.state_dict() if not k.startswith("fc.")}
    assert own == {k for k in ref.state_dict() if not k.startswith(("fc.", "layer4."))}
    assert target_layer(model, "resnet14") is model.layer3[-1]
    assert cam_grid(model, "resnet14", 112) == (7, 7) and cam_grid(model, "resnet14", 224) == (14, 14)
    assert infer_arch(model) == "resnet14" and infer_arch(get_model("resnet18", 3)) == "resnet18"
    assert get_model("resnet14", 3, output_stride=16).fc.in_features == 256
    with pytest.raises(ValueError, match="output_stride.*resnet14"):
        get_model("resnet14", 3, output_stride=32)
    # output_stride 8 dilates layer3 (as torchvision dilates a Bottleneck stage): a 14 x 14 grid at
    # 112 px, the same parameters, and the first convolution of the stage keeps dilation 1
    fine = get_model("resnet14", 3, output_stride=8)
    assert cam_grid(fine, "resnet14", 112) == (14, 14)
    assert fine.layer3[0].conv1.stride == (1, 1) and fine.layer3[0].downsample[0].stride == (1, 1)
    assert fine.layer3[0].conv1.dilation == (1, 1)
    assert fine.layer3[0].conv2.dilation == fine.layer3[1].conv1.dilation == fine.layer3[1].conv2.dilation == (2, 2)
    assert fine.layer2[0].conv1.stride == (2, 2)                     # the earlier stages as built
    fine.load_state_dict(model.state_dict())


def test_resnet14_pretrained_loads_resnet18_weights_for_its_stages(monkeypatch):
    import torchvision

    torch.manual_seed(1)
    donor = torchvision.models.resnet18().state_dict()
    monkeypatch.setattr("medxai_lite.models.zoo._load_pretrained", lambda arch, timeout: donor)
    model = get_model("resnet14", 2, pretrained=True)
    assert torch.equal(model.conv1.weight, donor["conv1.weight"])
    assert torch.equal(model.layer3[1].conv2.weight, donor["layer3.1.conv2.weight"])
    assert model.fc.out_features == 2 and model.fc.in_features == 256


def test_the_default_model_is_the_default_arch(tmp_cache):
    m = mx.get_trained_model("phantom-skin", progress=False, **TINY)
    assert m.report.arch == "resnet14" and isinstance(m.layer4, nn.Identity)
