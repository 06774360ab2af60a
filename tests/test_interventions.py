"""Concept interventions in the phantoms: the same images re-rendered with one concept forced.

Known answers: no intervention gives today's arrays (the stored fixture), forcing a concept to an
image's own value leaves that image bit for bit, an intervention changes only its concept's
entry and pixels near the lesion (or the artefact), and the report, answers and labels follow.
Tolerances were measured at 64 px (48 images, seed 3) and are stated where they apply.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medxai_lite.data import CLASS_DEFINING, INTERVENTIONS, intervene, list_datasets, load_dataset
from medxai_lite.data.phantoms import PHANTOMS, generate, lesion_shares

NAMES = list(PHANTOMS)
N, S, SEED = 48, 64, 3
FIXTURE = Path(__file__).parent / "data" / "phantoms_v3_before_artefact_masks.npz"
SQUARE = np.ones((1, 3, 3), bool)          # dilate each image on its own, 8-connected


@functools.lru_cache(maxsize=None)
def _gen(name, items=(), shortcut=0.0):
    return generate(name, N, size=S, seed=SEED, shortcut=shortcut, interventions=dict(items))


def gen(name, shortcut=0.0, **forced):
    return _gen(name, tuple(sorted((k.replace("_", " "), v) for k, v in forced.items())), shortcut)


def _near(masks, px):
    return ndimage.binary_dilation(masks, structure=SQUARE, iterations=px)


def _changed(a, b):
    return (a["images"] != b["images"]).any(-1)


def _same(a, b, keys=("images", "labels", "masks", "concepts")):
    return all(np.array_equal(a[k], b[k]) for k in keys)


# --------------------------------------------------------------------------- no intervention


@pytest.mark.parametrize("name", NAMES)
def test_no_intervention_gives_todays_arrays(name):
    ref = np.load(FIXTURE)                      # generator version 3, seed 3, 64 px, shortcut 1.0
    plain = generate(name, 24, size=64, seed=3, shortcut=1.0)
    for d in (generate(name, 24, size=64, seed=3, shortcut=1.0, interventions={}),
              generate(name, 24, size=64, seed=3, shortcut=1.0, interventions=None)):
        idx = ref[f"{name}/index"]
        assert np.array_equal(d["images"][idx], ref[f"{name}/images"])
        assert np.array_equal(d["masks"][idx], ref[f"{name}/masks"])
        assert np.array_equal(d["labels"][idx], ref[f"{name}/labels"])
        assert _same(d, plain) and d["captions"] == plain["captions"] and d["qa"] == plain["qa"]
        assert all(np.array_equal(d["meta"][k], plain["meta"][k]) for k in plain["meta"])
        assert d["interventions"] == {}


@pytest.mark.parametrize("name, forced", [
    ("phantom-brain-mri", {"ring enhancement": 0.0}), ("phantom-skin", {"colour variegation": 0.7}),
    ("phantom-chest-xray", {"lower zone": 1.0, "artefact": 1.0}),
])
def test_same_intervention_twice_same_arrays(name, forced):
    a = generate(name, 12, size=S, seed=1, interventions=forced)
    b = generate(name, 12, size=S, seed=1, interventions=dict(forced))
    assert _same(a, b) and a["captions"] == b["captions"] and a["qa"] == b["qa"]
    assert not _same(a, generate(name, 12, size=S, seed=1))


# --------------------------------------------------------------------------- brain MRI


def test_brain_own_values_leave_images_bit_for_bit():
    base = gen("phantom-brain-mri")
    glioma = base["labels"] == 0
    on = gen("phantom-brain-mri", ring_enhancement=1, necrotic_core=1, perilesional_oedema=1)
    off = gen("phantom-brain-mri", ring_enhancement=0, necrotic_core=0, perilesional_oedema=0)
    assert np.array_equal(on["images"][glioma], base["images"][glioma])          # a glioma's own signs
    assert np.array_equal(off["images"][~glioma], base["images"][~glioma])       # the others' own signs
    assert on["captions"][int(np.flatnonzero(glioma)[0])] == base["captions"][int(np.flatnonzero(glioma)[0])]


def test_brain_ring_enhancement_off():
    base, twin = gen("phantom-brain-mri"), gen("phantom-brain-mri", ring_enhancement=0)
    glioma = base["labels"] == 0
    assert glioma.sum() >= 8
    assert np.array_equal(twin["labels"], base["labels"]) and np.array_equal(twin["masks"], base["masks"])
    moved = twin["concepts"] != base["concepts"]
    assert np.array_equal(moved.any(1), glioma) and not np.delete(moved, 1, axis=1).any()
    assert (twin["concepts"][:, 1] == 0).all()
    changed = _changed(twin, base)
    assert np.array_equal(changed.any((1, 2)), glioma)                  # only the gliomas
    assert not (changed & ~_near(base["masks"], 3)).any()              # measured: within 3 px of the mask
    gray = lambda d: d["images"][..., 0].astype(float)
    for i in np.flatnonzero(glioma):                                     # the bright rim is gone
        m = base["masks"][i]
        assert gray(twin)[i][m].mean() < gray(base)[i][m].mean() - 10
        assert "ring-enhancing" in base["captions"][i] and "ring-enhancing" not in twin["captions"][i]
        assert "non-enhancing" in twin["captions"][i] and "in keeping with glioma" in twin["captions"][i]
        assert dict(twin["qa"][i])["Does the lesion show ring enhancement?"] == "no"
        assert dict(base["qa"][i])["Does the lesion show ring enhancement?"] == "yes"


def test_brain_ring_enhancement_on_a_meningioma_keeps_its_label():
    base, twin = gen("phantom-brain-mri"), gen("phantom-brain-mri", ring_enhancement=1)
    men = np.flatnonzero(base["labels"] == 1)
    none = base["labels"] == 3
    assert men.size >= 8 and np.array_equal(twin["labels"], base["labels"])
    assert (twin["concepts"][base["labels"] < 3, 1] == 1).all() and (twin["concepts"][none] == 0).all()
    assert np.array_equal(np.flatnonzero((twin["concepts"] != base["concepts"]).any(1)),
                          np.flatnonzero(base["labels"] % 3 != 0))      # meningiomas and pituitary tumours
    assert np.array_equal(twin["images"][none], base["images"][none])    # nothing to enhance
    changed = _changed(twin, base)
    assert not (changed & ~_near(base["masks"], 2)).any()
    for i in men:                                                        # the centre stops enhancing
        assert changed[i].any()
        assert "ring-enhancing extra-axial mass" in twin["captions"][i] and "meningioma" in twin["captions"][i]
        assert dict(twin["qa"][i])["What is the diagnosis?"] == "meningioma"


def test_brain_oedema_off_brightens_only_around_the_mass():
    base, twin = gen("phantom-brain-mri"), gen("phantom-brain-mri", perilesional_oedema=0)
    glioma = base["labels"] == 0
    moved = twin["concepts"] != base["concepts"]
    assert np.array_equal(moved.any(1), glioma) and moved[:, 3].sum() == glioma.sum() == moved.sum()
    changed = _changed(twin, base)
    assert np.array_equal(changed.any((1, 2)), glioma) and np.array_equal(twin["masks"], base["masks"])
    # the oedema is the brain around the mass: the changed pixels lie mostly outside the mask ...
    assert (changed & ~base["masks"]).sum() > 0.9 * changed.sum()
    # ... and are brighter without it
    diff = twin["images"][..., 0].astype(float) - base["images"][..., 0].astype(float)
    assert diff[changed].mean() > 5
    for i in np.flatnonzero(glioma):
        assert "oedema" in base["captions"][i] and "oedema" not in twin["captions"][i]
        assert "with a necrotic core in the" in twin["captions"][i]


def test_brain_mass_removed_makes_no_tumour():
    base, twin = gen("phantom-brain-mri"), gen("phantom-brain-mri", mass_present=0)
    assert (twin["labels"] == 3).all() and not twin["masks"].any() and not twin["concepts"].any()
    assert len(set(twin["captions"])) == 1 and "no mass" in twin["captions"][0]
    assert all(dict(q)["Is there a tumour?"] == "no" for q in twin["qa"])
    assert (twin["meta"]["lesion_diameter_mm"] == 0).all()
    none = base["labels"] == 3
    assert np.array_equal(twin["images"][none], base["images"][none])
    changed = _changed(twin, base)
    # meningioma and pituitary tumours: only the mass's pixels (within 2 px of its mask)
    other = (base["labels"] == 1) | (base["labels"] == 2)
    assert not (changed[other] & ~_near(base["masks"][other], 2)).any()
    # gliomas: their oedema reaches up to ~0.6 radii past the mask (measured: 15 px at 64 px), so
    # compare with the glioma whose oedema alone was removed: the two differ only at the mass
    no_oedema = gen("phantom-brain-mri", perilesional_oedema=0)
    glioma = base["labels"] == 0
    rest = (twin["images"] != no_oedema["images"]).any(-1)
    assert not (rest[glioma] & ~_near(base["masks"][glioma], 3)).any()
    assert rest[glioma].any((1, 2)).all()


# --------------------------------------------------------------------------- dermoscopy

SKIN = ("asymmetry", "border irregularity", "colour variegation", "diameter")


@pytest.mark.parametrize("k, concept", list(enumerate(SKIN)))
def test_skin_abcd_changes_only_its_entry_and_never_the_label(k, concept):
    base = gen("phantom-skin")
    for v in (0.0, 1.0):
        twin = gen("phantom-skin", **{concept.replace(" ", "_"): v})
        assert np.array_equal(twin["labels"], base["labels"])           # the label is the truth
        assert (twin["concepts"][:, k] == np.float32(v)).all()
        assert np.array_equal(np.delete(twin["concepts"], k, 1), np.delete(base["concepts"], k, 1))
        changed = _changed(twin, base)
        # the lesion's soft edge reaches past its mask by up to 5 px at 64 px (measured): 6 px
        assert not (changed & ~_near(base["masks"] | twin["masks"], 6)).any()
        if concept == "colour variegation":
            assert np.array_equal(twin["masks"], base["masks"])         # colour never moves the outline


def test_skin_abcd_render_what_they_say():
    lo = {c: gen("phantom-skin", **{c.replace(" ", "_"): 0.0}) for c in SKIN}
    hi = {c: gen("phantom-skin", **{c.replace(" ", "_"): 1.0}) for c in SKIN}

    def asymmetry(masks):                       # 1 - IoU of the mask with its 180-degree turn about its centroid
        out = []
        for m in masks:
            cy, cx = np.argwhere(m).mean(0)
            ys, xs = np.nonzero(m)
            turned = np.zeros_like(m)
            ty, tx = np.round(2 * cy - ys).astype(int), np.round(2 * cx - xs).astype(int)
            ok = (ty >= 0) & (ty < S) & (tx >= 0) & (tx < S)
            turned[ty[ok], tx[ok]] = True
            out.append(1 - (m & turned).sum() / (m | turned).sum())
        return np.mean(out)

    def ruggedness(masks):                      # boundary pixels per sqrt(area), per image
        edge = masks & ~ndimage.binary_erosion(masks, structure=SQUARE)
        return edge.sum((1, 2)) / np.sqrt(masks.sum((1, 2)))

    def colours(d):                             # spread of the lesion's colours
        return np.mean([d["images"][i][d["masks"][i]].astype(float).std(0).mean() for i in range(N)])

    assert asymmetry(hi["asymmetry"]["masks"]) > asymmetry(lo["asymmetry"]["masks"]) + 0.1
    assert (ruggedness(hi["border irregularity"]["masks"]) > ruggedness(lo["border irregularity"]["masks"])).all()
    assert colours(hi["colour variegation"]) > colours(lo["colour variegation"]) + 5
    small, big = lesion_shares(lo["diameter"]["masks"]), lesion_shares(hi["diameter"]["masks"])
    assert (big > small).all()
    mid = lesion_shares(gen("phantom-skin", diameter=0.5)["masks"])    # 3 % * 25**0.5 = 15 % of the image
    assert 0.15 / 1.3 < np.median(mid) < 0.15 * 1.3 and (small < mid).all()
    for i in range(N):
        assert " an asymmetric " in hi["asymmetry"]["captions"][i]
        assert " a symmetric " in lo["asymmetry"]["captions"][i]
        assert "irregular borders" in hi["border irregularity"]["captions"][i]
        assert "multiple colours" in hi["colour variegation"]["captions"][i]
        assert dict(hi["colour variegation"]["qa"][i])["How many colours does the lesion show?"] == "several"
        assert dict(lo["colour variegation"]["qa"][i])["How many colours does the lesion show?"] == "one"
        assert dict(hi["border irregularity"]["qa"][i])["What is the diagnosis?"] == PHANTOMS["phantom-skin"].classes[
            lo["asymmetry"]["labels"][i]]


# --------------------------------------------------------------------------- chest X-ray


def _outside_tolerance(twin, base, px=4):
    """Chest films: pixels changed more than 1 grey level away from the lesions, and the share of films'
    pixels changed there at all (the opacity's faint patchy tail below the mask's threshold and the
    detector blur; measured at 64 px: at most 1 grey level, on about 1 % of a film's pixels)."""
    diff = np.abs(twin["images"][..., 0].astype(int) - base["images"][..., 0].astype(int))
    far = ~_near(base["masks"] | twin["masks"], px)
    films = base["labels"] == 1
    return int(diff[far].max()), float((diff[films][far[films]] > 0).mean())


def test_chest_consolidation_removed_makes_a_normal_film():
    base, twin = gen("phantom-chest-xray"), gen("phantom-chest-xray", consolidation=0)
    normal = base["labels"] == 0
    assert (twin["labels"] == 0).all() and not twin["masks"].any() and not twin["concepts"].any()
    assert set(twin["captions"]) == {base["captions"][int(np.flatnonzero(normal)[0])]}
    assert all(dict(q)["Is there consolidation?"] == "no" and dict(q)["Which lung is affected?"] == "neither"
               for q in twin["qa"])
    assert np.array_equal(twin["images"][normal], base["images"][normal])
    worst, share = _outside_tolerance(twin, base)
    assert worst <= 1 and share < 0.02
    # the opacity was denser (brighter) than the lung it covered
    m = base["masks"]
    assert (base["images"][..., 0][m].astype(float) - twin["images"][..., 0][m]).mean() > 10


def test_chest_lower_zone_moves_the_opacities():
    base, up = gen("phantom-chest-xray"), gen("phantom-chest-xray", lower_zone=0)
    films = base["labels"] == 1
    assert np.array_equal(up["labels"], base["labels"])
    assert (up["concepts"][films, 3] == 0).all() and np.array_equal(up["concepts"][:, :3], base["concepts"][:, :3])
    # air bronchogram is measured where the bronchial pattern crosses the opacity: a moved
    # opacity keeps it on nearly every film
    assert (up["concepts"][films, 4] != base["concepts"][films, 4]).sum() <= 2
    rows = np.arange(S)[None, :, None]
    centre = lambda m: (m * rows).sum((1, 2)) / np.maximum(m.sum((1, 2)), 1)
    was_lower = films & (base["concepts"][:, 3] == 1)
    rise = centre(base["masks"])[was_lower] - centre(up["masks"])[was_lower]
    assert was_lower.sum() >= 8 and (rise > 0).all() and rise.mean() > 4         # rows, at 64 px
    stayed = films & (base["concepts"][:, 3] == 0)                      # already upper: bit for bit
    assert np.array_equal(up["images"][stayed], base["images"][stayed])
    assert all("lower" not in up["captions"][i] and "upper" in up["captions"][i] for i in np.flatnonzero(films))
    assert _outside_tolerance(up, base)[0] <= 1


def test_chest_lungs():
    base = gen("phantom-chest-xray")
    films = base["labels"] == 1
    add = gen("phantom-chest-xray", right_lung=1)
    assert (add["concepts"][films, 1] == 1).all()
    assert np.array_equal(np.delete(add["concepts"], 1, 1), np.delete(base["concepts"], 1, 1))
    assert (add["masks"] >= base["masks"]).all()                       # a copy added, nothing taken away
    new = add["masks"] & ~base["masks"]
    assert new.any() and not new[:, :, S // 2:].any()                   # in the patient's right lung: image left
    assert all(dict(add["qa"][i])["Which lung is affected?"] in ("right", "both") for i in np.flatnonzero(films))

    drop = gen("phantom-chest-xray", right_lung=0)
    assert (drop["concepts"][films, 1] == 0).all() and (drop["concepts"][films, 2] == 1).all()
    assert np.array_equal(drop["concepts"][:, [0, 4]], base["concepts"][:, [0, 4]]) or \
        (drop["concepts"][:, 4] != base["concepts"][:, 4]).sum() <= 2
    assert not drop["masks"][:, :, : S // 2].any() and drop["masks"][films].any((1, 2)).all()
    assert all(dict(drop["qa"][i])["Which lung is affected?"] == "left" for i in np.flatnonzero(films))
    # a film whose only opacity was in the left lung is the same film
    left_only = films & (base["concepts"][:, 1] == 0)
    assert left_only.any() and np.array_equal(drop["images"][left_only], base["images"][left_only])
    assert np.array_equal(drop["labels"], base["labels"])


def test_chest_bronchogram_off():
    base, twin = gen("phantom-chest-xray"), gen("phantom-chest-xray", air_bronchogram=0)
    films = base["labels"] == 1
    assert not twin["concepts"][:, 4].any() and np.array_equal(twin["concepts"][:, :4], base["concepts"][:, :4])
    assert np.array_equal(twin["masks"], base["masks"]) and _outside_tolerance(twin, base, 2)[0] <= 1
    # the air in the bronchi was darker: the opacity gets brighter without it
    m = base["masks"] & films[:, None, None]
    assert twin["images"][..., 0][m].astype(float).mean() > base["images"][..., 0][m].mean()


# --------------------------------------------------------------------------- the artefact


@pytest.mark.parametrize("name", NAMES)
def test_artefact_forced_on_and_off(name):
    base, on = gen(name), gen(name, artefact=1)
    assert on["meta"]["artefact"].all() and on["meta"]["artefact_mask"].any((1, 2)).all()
    assert _same(on, base, ("labels", "masks", "concepts")) and on["captions"] == base["captions"]
    changed = _changed(on, base)
    assert not (changed & ~on["meta"]["artefact_mask"]).any() and changed.any((1, 2)).all()
    # forced off on a fully shortcut set: exactly the set without a shortcut
    off = gen(name, shortcut=1.0, artefact=0)
    assert _same(off, base) and not off["meta"]["artefact"].any() and not off["meta"]["artefact_mask"].any()
    # forced on with a shortcut: the shortcut class is unchanged, the others gain the same artefact
    short = gen(name, shortcut=1.0)
    both = gen(name, shortcut=1.0, artefact=1)
    target = short["meta"]["artefact"]
    assert np.array_equal(both["images"][target], short["images"][target])
    assert np.array_equal(both["images"][~target], on["images"][~target])


def test_artefact_survives_a_class_change():
    """The artefact is part of the acquisition: removing the mass keeps it on the same images."""
    short = gen("phantom-brain-mri", shortcut=1.0)
    gone = gen("phantom-brain-mri", shortcut=1.0, mass_present=0)
    assert np.array_equal(gone["meta"]["artefact"], short["meta"]["artefact"]) and (gone["labels"] == 3).all()


# --------------------------------------------------------------------------- datasets and bad input


def test_load_dataset_and_intervene():
    test = load_dataset("phantom-brain-mri", "test", image_size=S, n=16, seed=2)
    assert test.generation["interventions"] == {} and test.generation["n"] == 16
    twin = intervene(test, {"ring enhancement": 0})
    direct = load_dataset("phantom-brain-mri", "test", image_size=S, n=16, seed=2,
                          interventions={"ring enhancement": 0})
    assert np.array_equal(twin.images, direct.images) and twin.captions == direct.captions
    assert not np.array_equal(twin.images, test.images)                 # the cache keeps them apart
    assert np.array_equal(load_dataset("phantom-brain-mri", "test", image_size=S, n=16, seed=2).images, test.images)
    assert (twin.concepts[:, 1] == 0).all() and np.array_equal(twin.labels, test.labels)
    # interventions add up, the newer one winning
    both = intervene(twin, {"perilesional oedema": 0, "artefact": 1})
    assert both.generation["interventions"] == {"ring enhancement": 0.0, "perilesional oedema": 0.0, "artefact": 1.0}
    assert (both.concepts[:, 1] == 0).all() and (both.concepts[:, 3] == 0).all() and both.meta["artefact"].all()
    glioma = test.labels == 0
    assert glioma.any() and np.array_equal(intervene(twin, {"ring enhancement": 1}).images[glioma], test.images[glioma])
    item = intervene(test, {"mass present": 0})[0]
    assert item["label"] == 3 and not item["mask"].any() and "no mass" in item["caption"]


def test_class_defining_concepts_are_the_documented_ones():
    """Every forceable concept leaves the labels alone unless CLASS_DEFINING names it."""
    for name, allowed in INTERVENTIONS.items():
        base = gen(name)
        for concept, values in allowed.items():
            for v in values or (0.0, 1.0):
                relabelled = not np.array_equal(gen(name, **{concept.replace(" ", "_"): v})["labels"], base["labels"])
                assert relabelled == (concept in CLASS_DEFINING[name]), (name, concept, v)


@pytest.mark.parametrize("name, forced, words", [
    ("phantom-skin", {"melanoma": 1}, ["unknown concept", "asymmetry", "diameter", "artefact"]),
    ("phantom-brain-mri", {"extra-axial": 1}, ["cannot be forced", "tumour type"]),
    ("phantom-brain-mri", {"sellar location": 0}, ["cannot be forced"]),
    ("phantom-brain-mri", {"mass present": 1}, ["no drawn mass"]),
    ("phantom-chest-xray", {"consolidation": 1}, ["no drawn opacity"]),
    ("phantom-skin", {"diameter": 1.5}, ["[0, 1]"]),
    ("phantom-skin", {"asymmetry": float("nan")}, ["[0, 1]"]),
    ("phantom-skin", {"asymmetry": "high"}, ["number"]),
    ("phantom-brain-mri", {"ring enhancement": 0.5}, ["0 or 1"]),
    ("phantom-skin", {"artefact": 0.3}, ["0 or 1"]),
    ("phantom-brain-mri", {"mass present": 0, "ring enhancement": 1}, ["contradicts"]),
    ("phantom-chest-xray", {"consolidation": 0, "lower zone": 1}, ["contradicts"]),
    ("phantom-chest-xray", {"right lung": 0, "left lung": 0}, ["consolidation"]),
    ("phantom-skin", ["asymmetry"], ["mapping"]),
])
def test_bad_interventions_name_the_parameter(name, forced, words):
    with pytest.raises(ValueError, match="interventions") as err:
        generate(name, 2, size=32, interventions=forced)
    assert all(w in str(err.value) for w in words), str(err.value)
    with pytest.raises(ValueError, match="interventions"):
        load_dataset(name, "test", image_size=32, n=2, interventions=forced)


def test_intervene_needs_a_phantom_dataset():
    from medxai_lite.data import ArrayDataset

    bare = ArrayDataset(name="x", split="test", images=np.zeros((1, 4, 4, 3), np.uint8), labels=[0],
                        classes=["a"], modality="none")
    with pytest.raises(ValueError, match="dataset"):
        intervene(bare, {"artefact": 1})
    with pytest.raises(ValueError, match="interventions"):
        intervene(load_dataset("phantom-skin", "test", image_size=32, n=2), [("artefact", 1)])
    public = next(n for n in list_datasets() if n not in PHANTOMS)
    with pytest.raises(ValueError, match="interventions"):
        load_dataset(public, "test", image_size=32, n=2, interventions={"artefact": 1})
