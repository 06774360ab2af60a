"""The phantom datasets: contract, determinism, knobs, ground truth and bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from medxai_lite import load_dataset
from medxai_lite.data import PHANTOMS, SHORTCUT_CLASS, denormalize
from medxai_lite.data.phantoms import fractal_noise, generate

NAMES = list(PHANTOMS)
NO_LESION = {"phantom-brain-mri": 3, "phantom-skin": None, "phantom-chest-xray": 0}


@pytest.mark.parametrize("name", NAMES)
def test_item_contract(name):
    ds = load_dataset(name, split="test", image_size=64, n=12, seed=3)
    assert len(ds) == 12 and ds.name == name and ds.modality and ds.split == "test"
    item = ds[0]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    assert 0 <= item["label"] < len(ds.classes)
    assert item["mask"].shape == (64, 64) and item["mask"].dtype == torch.bool
    assert item["concepts"].shape == (len(ds.concept_names),)
    assert isinstance(item["caption"], str) and ds.classes[item["label"]].split()[0] in item["caption"].lower() \
        or "normal" in item["caption"].lower() or "naevus" in item["caption"].lower()
    assert all(isinstance(q, str) and isinstance(a, str) for q, a in item["qa"])
    # the first question always asks for the diagnosis and its answer is the class name
    assert item["qa"][0] == ("What is the diagnosis?", ds.classes[item["label"]])
    # normalised with ImageNet statistics: denormalising gives back [0,1]
    back = denormalize(item["image"])
    assert float(back.min()) >= 0 and float(back.max()) <= 1


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_images_and_splits_differ(name):
    a = generate(name, 20, size=48, seed=5)
    b = generate(name, 20, size=48, seed=5)
    c = generate(name, 20, size=48, seed=6)
    assert np.array_equal(a["images"], b["images"]) and np.array_equal(a["masks"], b["masks"])
    assert a["captions"] == b["captions"]
    assert not np.array_equal(a["images"], c["images"])
    train = load_dataset(name, "train", image_size=48, n=8)
    test = load_dataset(name, "test", image_size=48, n=8)
    assert not np.array_equal(train.images, test.images)


@pytest.mark.parametrize("name", NAMES)
def test_masks_match_classes(name):
    d = generate(name, 60, size=64, seed=1)
    has_lesion = d["masks"].reshape(60, -1).any(1)
    empty_class = NO_LESION[name]
    for label, lesion in zip(d["labels"], has_lesion):
        if label == empty_class:
            assert not lesion
        else:
            assert lesion, f"class {PHANTOMS[name].classes[label]} should have a lesion mask"


def test_class_balance_exact_counts():
    d = generate("phantom-brain-mri", 100, size=32, seed=0, class_balance=[0.4, 0.3, 0.2, 0.1])
    assert np.bincount(d["labels"], minlength=4).tolist() == [40, 30, 20, 10]
    d = generate("phantom-skin", 7, size=32, seed=0)
    assert sorted(np.bincount(d["labels"]).tolist()) == [3, 4]


@pytest.mark.parametrize("name", NAMES)
def test_shortcut_only_on_its_class(name):
    d = generate(name, 200, size=48, seed=2, shortcut=0.8)
    art, labels = d["meta"]["artefact"], d["labels"]
    target = SHORTCUT_CLASS[name]
    assert not art[labels != target].any()
    assert 0.65 < art[labels == target].mean() < 0.95
    # the artefact changes pixels: the same seed without shortcut differs exactly on those images
    plain = generate(name, 200, size=48, seed=2, shortcut=0.0)
    differs = (plain["images"] != d["images"]).reshape(200, -1).any(1)
    assert np.array_equal(differs, art)
    assert not generate(name, 50, size=48, seed=2)["meta"]["artefact"].any()


def _lesion_contrast(name, difficulty):
    d = generate(name, 80, size=64, seed=4, difficulty=difficulty)
    img = d["images"].astype(float).mean(-1)
    diffs = []
    for i in range(80):
        m = d["masks"][i]
        if m.sum() > 10:
            # a band of 3 px around the outline (a bounding box would span both lungs on a bilateral film)
            ring = ndimage.binary_dilation(m, iterations=3) & ~m
            diffs.append(abs(img[i][m].mean() - img[i][ring].mean()))
    return np.mean(diffs)


@pytest.mark.parametrize("name", NAMES)
def test_difficulty_lowers_lesion_contrast(name):
    assert _lesion_contrast(name, 0.0) > _lesion_contrast(name, 1.0)


def test_anatomy_is_where_it_should_be():
    # MRI: dark air in the corners, brighter head in the centre
    mri = generate("phantom-brain-mri", 8, size=64, seed=0)["images"].mean(-1)
    assert mri[:, :6, :6].mean() < 30 and mri[:, 24:40, 16:24].mean() > 60
    # X-ray: the mediastinum (centre column) is denser (brighter) than the lung fields
    cxr = generate("phantom-chest-xray", 8, size=64, seed=0)["images"].mean(-1)
    assert cxr[:, 20:36, 30:34].mean() > cxr[:, 20:36, 12:18].mean() + 30
    # dermoscopy: circular field of view, so the corners are dark while the skin is bright
    skin = generate("phantom-skin", 8, size=64, seed=0)["images"].mean(-1)
    assert skin[:, :3, :3].mean() < skin[:, 4:12, 28:36].mean() - 60


def test_skin_concepts_follow_the_abcd_rule():
    d = generate("phantom-skin", 300, size=32, seed=0, difficulty=0.0)
    mel = d["labels"] == 1
    for k in range(3):  # asymmetry, border, colour: all clearly higher for melanoma
        assert d["concepts"][mel, k].mean() > d["concepts"][~mel, k].mean() + 0.3
    # diameter follows the calibrated sizes, whose class distributions overlap as in ISIC
    assert d["concepts"][mel, 3].mean() > d["concepts"][~mel, 3].mean() + 0.1


def test_grayscale_modalities_are_gray():
    for name in ("phantom-brain-mri", "phantom-chest-xray"):
        img = generate(name, 4, size=32, seed=0)["images"]
        assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])


def test_any_size_same_anatomy():
    small = generate("phantom-chest-xray", 4, size=32, seed=9)
    big = generate("phantom-chest-xray", 4, size=256, seed=9)
    assert big["images"].shape == (4, 256, 256, 3)
    assert np.array_equal(small["labels"], big["labels"])


def test_fractal_noise_statistics():
    rng = np.random.default_rng(0)
    x = fractal_noise(rng, 4, 64, beta=2.0)
    assert x.shape == (4, 64, 64) and x.dtype == np.float32
    assert np.allclose(x.mean((1, 2)), 0, atol=1e-4) and np.allclose(x.std((1, 2)), 1, atol=1e-3)
    # a steeper spectrum is smoother: neighbouring pixels correlate more
    smooth = fractal_noise(rng, 4, 64, beta=4.0)
    corr = lambda a: np.corrcoef(a[:, :, 1:].ravel(), a[:, :, :-1].ravel())[0, 1]
    assert corr(smooth) > corr(x)


@pytest.mark.parametrize("kwargs, param", [
    (dict(name="phantom-lung"), "dataset"),
    (dict(name="phantom-skin", split="validation"), "split"),
    (dict(name="phantom-skin", image_size=8), "image_size"),
    (dict(name="phantom-skin", image_size=5000), "image_size"),
    (dict(name="phantom-skin", n=0), "n"),
    (dict(name="phantom-skin", difficulty=1.5), "difficulty"),
    (dict(name="phantom-skin", shortcut=-0.1), "shortcut"),
    (dict(name="phantom-skin", class_balance=[0.2, 0.2]), "class_balance"),
])
def test_bad_input_names_the_parameter(kwargs, param):
    with pytest.raises(ValueError, match=param):
        load_dataset(**{"image_size": 32, "n": 4, **kwargs})


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ValueError) as err:
        load_dataset("mnist")
    for name in NAMES:
        assert name in str(err.value)


def test_lesion_batch_picks_lesions_and_never_overruns():
    from medxai_lite.data import lesion_batch

    ds = load_dataset("phantom-brain-mri", "test", image_size=32, n=12, seed=0)
    batch = lesion_batch(ds, 5)
    assert len(batch["image"]) == 5 and bool(batch["mask"].flatten(1).any(1).all())
    assert len(lesion_batch(ds, 100)["image"]) == int(ds.masks.reshape(12, -1).any(1).sum())
    with pytest.raises(ValueError, match="n must"):
        lesion_batch(ds, 0)


def _shares_by_class(name, n=240, size=96, seed=11, difficulty=0.3):
    from medxai_lite.data.phantoms import lesion_shares

    d = generate(name, n, size=size, seed=seed, difficulty=difficulty)
    shares = lesion_shares(d["masks"])
    return {cls: shares[d["labels"] == c] for c, cls in enumerate(PHANTOMS[name].classes)}


@pytest.mark.parametrize("name", NAMES)
def test_lesion_sizes_follow_calibration(name):
    """Generated masks cover the share of the image the real datasets' masks or boxes do."""
    from medxai_lite.data.phantoms import LESION_SIZES

    for cls, shares in _shares_by_class(name).items():
        if (name, cls) not in LESION_SIZES:
            assert not shares.any(), f"{cls} has no lesion"
            continue
        c = LESION_SIZES[(name, cls)]
        # a chest film carries one or two opacities (55 % two), each of the calibrated size
        per_film = 1.55 if name == "phantom-chest-xray" else 1.0
        median = np.median(shares)
        assert c["median"] * per_film / 1.3 <= median <= c["median"] * per_film * 1.3, (cls, median, c)
        assert shares.min() >= c["low"] * 0.5 and shares.max() <= c["high"] * 2 * per_film, (cls, shares.min(), shares.max())
        # spread: a log-normal, not one fixed size
        assert np.percentile(shares, 90) / np.percentile(shares, 10) > 2.0


def test_calibrated_ordering_and_difficulty():
    brain = {k: np.median(v) for k, v in _shares_by_class("phantom-brain-mri").items() if v.any()}
    assert brain["pituitary"] < brain["meningioma"] < brain["glioma"]
    skin = _shares_by_class("phantom-skin")
    assert np.median(skin["melanoma"]) > np.median(skin["benign naevus"])      # D of ABCD
    # ISIC 2018: lesions cover 21.4 % of the image on average
    assert 0.17 <= np.mean(np.concatenate(list(skin.values()))) <= 0.27
    # difficulty shrinks lesions, and 0.3 is the calibrated default
    easy = np.median(_shares_by_class("phantom-chest-xray", difficulty=0.0)["pneumonia"])
    hard = np.median(_shares_by_class("phantom-chest-xray", difficulty=1.0)["pneumonia"])
    assert easy > np.median(_shares_by_class("phantom-chest-xray")["pneumonia"]) > hard


def test_chest_films_have_one_or_two_opacities():
    d = generate("phantom-chest-xray", 120, size=96, seed=3)
    sick = np.flatnonzero(d["labels"] == 1)
    both = np.array(["both lungs" in c or " and " in c for c in np.asarray(d["captions"])[sick]])
    assert 0.4 < both.mean() < 0.7                                 # RSNA: 55 % of positive films have two boxes
    left_half = d["masks"][sick][:, :, :48].reshape(len(sick), -1).any(1)
    right_half = d["masks"][sick][:, :, 48:].reshape(len(sick), -1).any(1)
    assert np.array_equal(left_half & right_half, both)           # two opacities: one in each lung
    assert d["concepts"][sick][both][:, 1:3].min() == 1           # both lung concepts set
    assert all(ndimage.label(m)[1] >= 1 for m in d["masks"][sick])


def test_lesion_shares_checks_its_input():
    from medxai_lite.data.phantoms import lesion_shares

    assert lesion_shares(np.ones((2, 4, 4), bool)).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="masks"):
        lesion_shares(np.ones((4, 4), bool))
