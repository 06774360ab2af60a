"""The example-based family (medxai_lite.explain.examples, medxai_lite.models.explainers):
known answers on models whose decision is known by construction, plus one small trained model.

- nearest examples: a reference set that holds the query returns the query first, at distance 0;
- prototypes: on two well-separated blobs of features the prototypes are the blob means and
  every image's nearest prototype is its own class;
- prototype counterfactuals: on a linear model the counterfactual flips the prediction within
  1.5 x the smallest possible L2 change (the distance to the decision boundary), and a larger
  ``theta`` pulls it closer to the target prototype;
- CEM: on a model that reads four pixels, the pertinent positive alone keeps the class and the
  pertinent negative's addition changes it, both only on those pixels, most on the heaviest one;
- L2X: on images whose class is the brightness of one random patch, the selected patch is that
  patch (pointing game against the true patch);
- influence (TracIn, and Koh & Liang's influence function): the captum scores equal the last-layer
  gradient dot product by hand, normalised scores are gradient cosines, and on a SmallCNN trained
  with planted mislabelled images those images rank far above chance among the most harmful
  training images and by self-influence.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medxai_lite.data import load_dataset
from medxai_lite.data.base import denormalize, normalize
from medxai_lite.explain import METHODS, OUTPUT_KINDS, explain, list_methods
from medxai_lite.explain.examples import ExampleIndex, class_prototypes, example_index, influence_scores, self_influence
from medxai_lite.models.zoo import SmallCNN

FAMILY = list_methods("Example-based")


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models: one torch thread (see tests/conftest.py)."""


def _settled_cnn(num_classes: int = 2, size: int = 32) -> nn.Module:
    """A seeded SmallCNN of width 4 whose BatchNorm statistics come from random images."""
    torch.manual_seed(0)
    model = SmallCNN(num_classes, width=4)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 3, size, size, generator=torch.Generator().manual_seed(1)))
    return model.eval()


@pytest.fixture(scope="module")
def cnn():
    return _settled_cnn()


@pytest.fixture(scope="module")
def refs():
    return load_dataset("phantom-skin", "train", image_size=32, n=24, seed=0)


# --------------------------------------------------------------------------- nearest examples
def test_nearest_examples_return_the_query_itself_first_at_distance_zero(cnn, refs):
    queries = refs.batch([3, 7, 20])["image"]
    for metric in ("euclidean", "cosine"):
        result = explain("nearest_examples", cnn, queries, references=refs, k=4, metric=metric)
        assert result.kind == "examples" and result.maps is None
        np.testing.assert_array_equal(result.value["indices"][:, 0], [3, 7, 20])
        gaps = result.value["distances"]
        assert (gaps[:, 0] <= 1e-4 * np.maximum(gaps[:, 1], 1e-12)).all(), gaps      # 0 up to rounding
        assert (np.diff(gaps, axis=1) >= 0).all()
        np.testing.assert_array_equal(result.value["labels"], refs.labels[result.value["indices"]])
    # a prebuilt index gives the same answer; "batch" looks among the images explained
    index = example_index(cnn, refs)
    assert isinstance(index, ExampleIndex) and len(index) == len(refs)
    again = explain("nearest_examples", cnn, queries, references=index, k=4)
    np.testing.assert_array_equal(again.value["indices"], explain("nearest_examples", cnn, queries, references=refs,
                                                                  k=4).value["indices"])
    among = explain("nearest_examples", cnn, queries, references="batch", k=10)
    np.testing.assert_array_equal(among.value["indices"][:, 0], [0, 1, 2])
    assert among.value["indices"].shape == (3, 3)                      # k is capped at the 3 references


# --------------------------------------------------------------------------- prototypes
class ChannelMeans(nn.Module):
    """ENC(x) = the mean of each channel (3 features), then a linear head: features known exactly."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(3, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[-1.0, 0, 0], [1.0, 0, 0]]))
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(x.mean((2, 3)))


def _blobs(n: int, seed: int):
    """Images whose channel means form two blobs, around (-3, 0, 1) (class 0) and (3, 1, 0) (class 1)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[-3.0, 0.0, 1.0], [3.0, 1.0, 0.0]])
    labels = torch.arange(n) % 2
    means = centres[labels] + 0.3 * torch.randn(n, 3, generator=g)
    images = means[:, :, None, None] + 0.1 * torch.randn(n, 3, 8, 8, generator=g)
    return images, labels


def test_prototypes_of_two_blobs_are_the_blob_means_and_each_image_is_nearest_its_own():
    model = ChannelMeans().eval()
    images, labels = _blobs(40, seed=0)
    queries, truth = _blobs(10, seed=1)
    result = explain("prototypes", model, queries, references=(images, labels))
    protos = result.extras["prototypes"]
    feats = images.mean((2, 3)).numpy()
    for c in (0, 1):
        row = list(protos.classes).index(c)
        np.testing.assert_allclose(protos.centres[row], feats[labels.numpy() == c].mean(0), atol=1e-5)
        # its picture is the reference of that class nearest to the mean
        members = np.flatnonzero(labels.numpy() == c)
        assert protos.pictures[row] == members[np.linalg.norm(feats[members] - protos.centres[row], axis=1).argmin()]
    np.testing.assert_array_equal(result.value["classes"][:, 0], truth.numpy())
    assert (result.value["distances"][:, 0] < result.value["distances"][:, 1]).all()
    # two prototypes per class (k-means within the class): both lie in their own blob
    two = explain("prototypes", model, queries, references=(images, labels), n_per_class=2, k=3)
    assert two.value["indices"].shape == (10, 3) and len(two.extras["prototypes"].classes) == 4
    centres = two.extras["prototypes"].centres
    own = np.stack([feats[labels.numpy() == c].mean(0) for c in two.extras["prototypes"].classes])
    other = np.stack([feats[labels.numpy() != c].mean(0) for c in two.extras["prototypes"].classes])
    assert (np.linalg.norm(centres - own, axis=1) < np.linalg.norm(centres - other, axis=1)).all()
    np.testing.assert_array_equal(two.value["classes"][:, 0], truth.numpy())
    # the function behind it, on an index built directly
    direct = class_prototypes(ExampleIndex(feats, labels.numpy()))
    np.testing.assert_allclose(direct.centres, protos.centres, atol=1e-6)


# --------------------------------------------------------------------------- counterfactuals
class LinearTwo(nn.Module):
    """ENC(x) = A x (two features), logits = ENC(x): class 1 iff (a_1 - a_0) . x > 0, so the smallest L2
    change that flips the prediction is |margin| / ||a_1 - a_0||."""

    def __init__(self, d: int = 3 * 16 * 16):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.enc, self.head = nn.Linear(d, 2), nn.Linear(2, 2)
        with torch.no_grad():
            self.enc.weight.copy_(torch.randn(2, d, generator=g) / d ** 0.5)
            self.enc.bias.zero_()
            self.head.weight.copy_(torch.eye(2))
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(self.enc(x.flatten(1)))


def test_a_prototype_counterfactual_flips_the_prediction_within_its_distance_budget():
    model = LinearTwo().eval()
    w = (model.enc.weight[1] - model.enc.weight[0]).detach()
    direction = (w / w.norm()).view(1, 3, 16, 16)
    g = torch.Generator().manual_seed(1)

    def blob(n, side):
        return 0.3 * torch.randn(n, 3, 16, 16, generator=g) + side * direction

    refs, labels = torch.cat([blob(20, -1.0), blob(20, 1.0)]), torch.tensor([0] * 20 + [1] * 20)
    x = blob(4, -1.0)
    with torch.no_grad():
        margin = model(x)[:, 1] - model(x)[:, 0]
    assert (margin < 0).all()
    minimal = (margin.abs() / w.norm()).numpy()                        # distance to the decision boundary
    results = {theta: explain("counterfactual_proto", model, x, references=(refs, labels), theta=theta)
               for theta in (0.0, 1.0, 10.0)}
    for theta, result in results.items():
        cf = torch.as_tensor(result.extras["counterfactual"])
        with torch.no_grad():
            assert (model(cf).argmax(1) == 1).all(), theta              # flipped
        assert result.extras["flipped"].all() and (result.extras["target_class"] == 1).all()
        assert (result.extras["counterfactual_class"] == 1).all()
        assert result.extras["target_source"] == ["prototype"] * 4
        l2 = np.linalg.norm((cf - x).flatten(1).numpy(), axis=1)
        np.testing.assert_allclose(l2, result.extras["l2"], rtol=1e-4)
        if theta <= 1.0:                                                # the budget: 1.5 x the minimum
            assert (l2 >= minimal * (1 - 1e-3)).all() and (l2 <= 1.5 * minimal).all(), (theta, l2 / minimal)
        # the map is |x_cf - x| summed over channels
        np.testing.assert_allclose(result.raw, (cf - x).abs().sum(1).numpy(), rtol=1e-4, atol=1e-6)
    # theta pulls the counterfactual's encoding towards the target prototype
    assert results[10.0].extras["proto_distance"].mean() < results[0.0].extras["proto_distance"].mean()


# --------------------------------------------------------------------------- CEM
PIXELS = [(3, 3), (3, 12), (12, 3), (12, 12)]


class FourPixels(nn.Module):
    """logit_1 - logit_0 = 3 u(3,3) + u(3,12) + u(12,3) + u(12,12) - 1.5, with u the grey level in [0, 1]."""

    def __init__(self):
        super().__init__()
        w = torch.zeros(16, 16)
        for (r, c), v in zip(PIXELS, (3.0, 1.0, 1.0, 1.0)):
            w[r, c] = v
        self.register_buffer("w", w)
        self.head = nn.Linear(1, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[0.0], [1.0]]))
            self.head.bias.copy_(torch.tensor([0.0, -1.5]))

    def forward(self, x):
        return self.head((denormalize(x).mean(1) * self.w).sum((1, 2))[:, None])


def _grey(u: torch.Tensor) -> torch.Tensor:
    return normalize(u[:, None].expand(-1, 3, -1, -1).contiguous())


@pytest.fixture(scope="module")
def four_pixels():
    g = torch.Generator().manual_seed(0)
    texture = 0.4 * torch.rand(2, 16, 16, generator=g)
    texture[:, 0, 0] = 0.0                                   # a black pixel: the "black" baseline is 0
    on, off = texture.clone(), texture.clone()
    for r, c in PIXELS:
        on[:, r, c], off[:, r, c] = 1.0, 0.0
    read = np.zeros((16, 16), bool)
    for r, c in PIXELS:
        read[r, c] = True
    return FourPixels().eval(), _grey(on), _grey(off), read


def test_the_pertinent_positive_alone_keeps_the_class_and_the_pertinent_negative_changes_it(four_pixels):
    model, on, off, read = four_pixels
    with torch.no_grad():
        assert model(on).argmax(1).tolist() == [1, 1] and model(off).argmax(1).tolist() == [0, 0]
    pp = explain("cem_pp", model, on)
    shown = torch.as_tensor(pp.extras["pp"])
    with torch.no_grad():
        assert model(shown).argmax(1).tolist() == [1, 1]                 # the PP alone keeps class 1
    assert pp.extras["found"].all() and (pp.raw[:, ~read] == 0).all()    # only the pixels the model reads
    assert all(divmod(int(m.argmax()), 16) == PIXELS[0] for m in pp.raw)  # most on the heaviest one
    assert (pp.extras["l1"] < np.abs((on - torch.as_tensor(pp.extras["baseline"])).numpy()).reshape(2, -1).sum(1)).all()
    pn = explain("cem_pn", model, off)
    shown = torch.as_tensor(pn.extras["pn"])
    with torch.no_grad():
        assert model(shown).argmax(1).tolist() == [1, 1]                 # adding the PN changes the class
    assert pn.extras["found"].all() and (pn.raw[:, ~read] == 0).all()
    assert (torch.as_tensor(pn.extras["delta"]) >= 0).all()              # an addition (brighter than black)
    assert all(divmod(int(m.argmax()), 16) == PIXELS[0] for m in pn.raw)


# --------------------------------------------------------------------------- L2X
class BrightestPatch(nn.Module):
    """Class 1 iff one 8 x 8 patch is bright (0.95), class 0 iff one is dark (0.05): logit gap
    10 (max + min - 1) of the patch means of the grey level."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(1, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[-5.0], [5.0]]))
            self.head.bias.zero_()

    def forward(self, x):
        means = F.avg_pool2d(denormalize(x).mean(1, keepdim=True), 8).flatten(1)
        return self.head(2 * (means.amax(1) + means.amin(1) - 1)[:, None])


def _patch_images(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    u = (0.5 + 0.05 * torch.randn(n, 32, 32, generator=g)).clamp(0, 1)
    where = torch.randint(0, 16, (n,), generator=g)
    label = torch.randint(0, 2, (n,), generator=g)
    masks = torch.zeros(n, 32, 32, dtype=torch.bool)
    for i in range(n):
        r, c = divmod(int(where[i]), 4)
        u[i, 8 * r:8 * r + 8, 8 * c:8 * c + 8] = 0.95 if label[i] else 0.05
        masks[i, 8 * r:8 * r + 8, 8 * c:8 * c + 8] = True
    return _grey(u), label, masks.numpy()


@pytest.mark.parametrize("approximator", ["learned", "classifier"])
def test_l2x_selects_the_one_patch_that_decides_the_class(approximator):
    from medxai_lite.metrics.localisation import pointing_game
    from medxai_lite.models.explainers import train_l2x

    model = BrightestPatch().eval()
    train, _, _ = _patch_images(160, seed=0)
    test, label, masks = _patch_images(48, seed=1)
    with torch.no_grad():
        assert (model(test).argmax(1) == label).all()
    l2x = train_l2x(model, train, k=1, patch=8, epochs=8, approximator=approximator, seed=0)
    result = explain("l2x", model, test, explainer=l2x)
    hits = pointing_game(None, None, None, result.maps, masks)
    assert hits.mean() >= 0.9, hits.mean()                                     # chance: 1 / 16
    assert result.extras["selected"].shape == (48, 1) and set(np.unique(result.maps)) <= {0.0, 1.0}
    assert result.extras["probabilities"].shape == (48, 4, 4)
    np.testing.assert_allclose(result.extras["probabilities"].sum((1, 2)), 1, rtol=1e-5)
    # same seed, same explainer
    again = train_l2x(model, train, k=1, patch=8, epochs=8, approximator=approximator, seed=0)
    for a, b in zip(l2x.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------- influence
@pytest.fixture(scope="module")
def mislabelled(tmp_path_factory):
    """A SmallCNN (width 8) trained for 16 epochs on 200 chest-phantom images at 32 px, 10 of class 0 labelled 1,
    through the cached helper (in a private cache), loaded a second time from that cache."""
    from medxai_lite.models.explainers import get_mislabelled_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDXAI_CACHE", str(tmp_path_factory.mktemp("cache")))
        kwargs = dict(n_planted=10, image_size=32, n_train=200, width=8, epochs=16, seed=0)
        model = get_mislabelled_model("phantom-chest-xray", **kwargs)
        again = get_mislabelled_model("phantom-chest-xray", **kwargs)
    assert again.report == model.report
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    return again


def test_tracin_with_one_checkpoint_is_the_last_layer_gradient_dot_product(mislabelled):
    from medxai_lite.explain.examples import training_split
    from medxai_lite.latent import penultimate_features

    train, labels = training_split(mislabelled)
    items = train.batch(range(12))
    x = load_dataset("phantom-chest-xray", "test", image_size=32, n=3, seed=0).batch()["image"]
    targets = torch.tensor([0, 1, 0])
    scores = influence_scores(mislabelled, x, targets, (items["image"], labels[:12]), learning_rate=0.5)

    def parts(images, y):
        feats = penultimate_features(mislabelled, images, keep_images=False)
        g = F.softmax(torch.as_tensor(feats.logits), 1) - F.one_hot(torch.as_tensor(y), 2)
        return torch.as_tensor(feats.features), g

    a_test, g_test = parts(x, targets)
    a_train, g_train = parts(items["image"], torch.as_tensor(labels[:12]))
    # captum's TracInCPFast: the gradient with respect to the layer's weight (not its bias), g a^T
    by_hand = 0.5 * (a_test @ a_train.T) * (g_test @ g_train.T)
    np.testing.assert_allclose(scores, by_hand.numpy(), rtol=1e-3, atol=1e-7)


def test_influence_ranks_planted_mislabelled_images_far_above_chance(mislabelled):
    report = mislabelled.report
    planted, n = np.asarray(report.planted), len(report.labels)
    chance = len(planted) / n                                               # 10 / 200 = 5 %
    assert (np.asarray(report.labels)[planted] == report.target).all()
    # TracIn's own mislabel detection: planted images have the largest self-influence
    scores = self_influence(mislabelled, None)
    top = np.argsort(-scores)[:20]
    assert np.isin(top, planted).mean() >= 5 * chance, np.isin(top, planted).mean()
    # for test images of the planted images' true class, they are among the most harmful
    test = load_dataset("phantom-chest-xray", "test", image_size=32, n=60, seed=0)
    batch = test.batch()
    x = batch["image"][batch["label"] == report.source][:12]
    result = explain("influence", mislabelled, x, k=10)
    harmful = result.extras["harmful_indices"]
    share = np.isin(harmful, planted).mean()
    assert share >= 5 * chance, share
    assert np.isin(result.value["indices"], planted).mean() <= chance       # and not among the helpful
    assert (result.value["scores"] > 0).all() and (result.extras["harmful_scores"] < 0).all()
    assert result.extras["checkpoints"] == 1 and result.extras["source"].startswith("training split")
    # every parameter instead of the last layer: the same finding
    full = explain("influence", mislabelled, x[:4], k=10, scope="all")
    assert np.isin(full.extras["harmful_indices"], planted).mean() >= 5 * chance
    # normalised by both self-influences (gradient cosine): still the planted images
    cosine = explain("influence", mislabelled, x, k=10, normalize=True)
    assert np.isin(cosine.extras["harmful_indices"], planted).mean() >= 5 * chance
    # Koh & Liang's influence function on the last layer (exact Hessian): noisier here, still far above chance
    koh = explain("influence", mislabelled, x, k=10, estimator="influence_function")
    assert np.isin(koh.extras["harmful_indices"], planted).mean() >= 3 * chance


def test_a_trained_model_is_explained_against_its_own_training_split_from_the_cache(mislabelled, tmp_cache):
    """references=None / train=None: the training split the model's report names, its features and the
    L2X explainer trained once and cached beside the model."""
    from medxai_lite.explain.examples import training_split
    from medxai_lite.models.explainers import get_trained_l2x

    train, labels = training_split(mislabelled)
    np.testing.assert_array_equal(labels, mislabelled.report.labels)            # the labels it was trained with
    x = train.batch([5, 50, 150])["image"]
    first = explain("nearest_examples", mislabelled, x, k=3)
    assert list(tmp_cache.rglob("*example-index*.npz"))
    np.testing.assert_array_equal(first.value["indices"][:, 0], [5, 50, 150])
    np.testing.assert_array_equal(first.value["labels"][:, 0], labels[[5, 50, 150]])
    np.testing.assert_array_equal(explain("nearest_examples", mislabelled, x, k=3).value["indices"],
                                  first.value["indices"])
    protos = explain("prototypes", mislabelled, x)
    assert sorted(protos.extras["prototypes"].classes) == [0, 1]
    l2x = get_trained_l2x(mislabelled, k=2, patch=8, epochs=2)
    assert l2x.report.n_train == len(train) and list(tmp_cache.rglob("*-l2x-*.pt"))
    again = get_trained_l2x(mislabelled, k=2, patch=8, epochs=2)
    assert again.report == l2x.report
    for a, b in zip(l2x.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    via_explain = explain("l2x", mislabelled, x, k=2, patch=8, epochs=2)
    np.testing.assert_array_equal(via_explain.extras["selected"], explain("l2x", mislabelled, x, explainer=l2x)
                                  .extras["selected"])


def test_normalised_influence_is_the_cosine_of_the_loss_gradients(cnn):
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    result = explain("influence", cnn, x, train="batch", normalize=True, k=4)   # labels: the predictions
    np.testing.assert_array_equal(result.value["indices"][:, 0], [0, 1, 2, 3])  # each image is its own best
    np.testing.assert_allclose(result.value["scores"][:, 0], 1.0, rtol=1e-4)
    assert (np.abs(result.value["scores"]) <= 1 + 1e-5).all()
    raw = explain("influence", cnn, x, train="batch", k=4)
    assert not np.allclose(raw.value["scores"][:, 0], 1.0)


# --------------------------------------------------------------------------- every method through explain
@pytest.mark.parametrize("method", FAMILY)
def test_every_example_based_method_meets_its_kinds_contract(method, cnn):
    info = METHODS[method]
    assert info.family == "Example-based" and info.output in ("map", "examples")
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    result = explain(method, cnn, x, preset="quick")
    assert result.kind == info.output and len(result) == 3
    if result.kind == "map":
        assert result.maps.shape == result.raw.shape == (3, 32, 32)
        assert result.maps.min() >= 0 and result.maps.max() <= 1 and np.isfinite(result.raw).all()
    else:
        OUTPUT_KINDS["examples"].check(result.value, 3)
        assert result.value["indices"].max() < 3                           # quick: the batch itself


@pytest.mark.parametrize(("method", "options", "name"), [
    ("nearest_examples", {"k": 0}, "k"),
    ("nearest_examples", {"metric": "manhattan"}, "metric"),
    ("nearest_examples", {"references": "train"}, "references"),
    ("nearest_examples", {"references": None}, "references"),            # a model without a training report
    ("nearest_examples", {"references": [1, 2]}, "references"),
    ("prototypes", {"by": "class"}, "by"),
    ("prototypes", {"n_per_class": 0}, "n_per_class"),
    ("counterfactual_proto", {"beta": -1.0}, "beta"),
    ("counterfactual_proto", {"steps": 0}, "steps"),
    ("counterfactual_proto", {"c": 0}, "c"),
    ("cem_pp", {"baseline": "white"}, "baseline"),
    ("cem_pn", {"kappa": -0.1}, "kappa"),
    ("l2x", {"approximator": "net"}, "approximator"),
    ("l2x", {"train": "all"}, "train"),
    ("l2x", {"train": None}, "train"),
    ("l2x", {"patch": 5}, "patch"),
    ("l2x", {"explainer": "mine"}, "explainer"),
    ("influence", {"scope": "everything"}, "scope"),
    ("influence", {"loss": "mse"}, "loss"),
    ("influence", {"train": None}, "train"),
    ("influence", {"labels": [0]}, "labels"),
    ("influence", {"estimator": "exact"}, "estimator"),
    ("influence", {"normalize": "yes"}, "normalize"),
    ("influence", {"estimator": "influence_function", "scope": "all"}, "scope"),
])
def test_bad_options_raise_a_value_error_naming_the_option(cnn, method, options, name):
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    base = {**METHODS[method].presets["quick"], **options}
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        explain(method, cnn, x, **base)


def test_planting_mislabels_relabels_exactly_n_images_of_the_source_class():
    from medxai_lite.models.explainers import plant_mislabels

    labels = np.array([0, 1, 0, 1, 0, 0, 1, 0])
    noisy, planted = plant_mislabels(labels, 3, seed=0)
    assert len(planted) == 3 and (labels[planted] == 0).all() and (noisy[planted] == 1).all()
    assert (noisy != labels).sum() == 3
    np.testing.assert_array_equal(plant_mislabels(labels, 3, seed=0)[1], planted)
    with pytest.raises(ValueError, match="n must be at most"):
        plant_mislabels(labels, 9)
    with pytest.raises(ValueError, match="target"):
        plant_mislabels(labels, 1, source=0, target=0)


def test_a_failed_search_reports_the_class_the_model_gives_the_made_image():
    """With a margin kappa the searches count success only when the class wins by kappa; when one
    fails (10 steps, kappa 5), the class reported for the image it made is still the model's
    own argmax of that image, not the kappa-shifted one (which named the original class)."""
    torch.manual_seed(0)
    model = SmallCNN(num_classes=2, width=4)
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 0.5
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 0.5)
    model.eval()
    for method, image, cls, opts in (("counterfactual_proto", "counterfactual", "counterfactual_class",
                                      {"references": "batch"}), ("cem_pn", "pn", "class", {}),
                                     ("cem_pp", "pp", "class", {})):
        res = explain(method, model, x, steps=10, c_steps=1, lr=0.01, kappa=5.0, **opts)
        success = res.extras.get("flipped", res.extras.get("found"))
        with torch.no_grad():
            actual = model(torch.as_tensor(res.extras[image])).argmax(1).numpy()
        np.testing.assert_array_equal(res.extras[cls], actual, err_msg=method)
        if method != "cem_pp":
            assert not success.any() and (actual != res.targets).any(), method   # failed, yet the class moved
