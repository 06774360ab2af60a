"""medxai_lite.latent and medxai_lite.viz.latent: features, projections, their quality scores, the figures."""
from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

from medxai_lite.latent import (LatentFeatures, class_islands, classifier_head, cluster_separation, continuity,
                                knn_accuracy, mix_features, penultimate_features, project, seed_stability,
                                sensitivity_grid, trustworthiness)
from medxai_lite.models.zoo import SmallCNN, get_model
from medxai_lite.viz.latent import latent_scatter, plot_projection_grid, thumbnail_uris, with_thumbnails


@pytest.fixture(scope="module")
def blobs():
    """Three well separated Gaussian blobs in 20 dimensions, 20 points each."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=8.0, size=(3, 20))
    x = np.concatenate([c + rng.normal(size=(20, 20)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(3), 20)


@pytest.fixture(scope="module")
def small_cnn():
    torch.manual_seed(0)
    return SmallCNN(num_classes=3, width=8).eval()


def _line(values):
    """Points on a line, embedded in 2-D (the second coordinate is 0)."""
    v = np.asarray(values, dtype=float)[:, None]
    return np.hstack([v, np.zeros_like(v)])


# ----------------------------------------------------------------------------------------- features
def test_head_of_features_reproduces_the_logits(small_cnn):
    x = torch.randn(10, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    feats = penultimate_features(small_cnn, x, labels=np.arange(10) % 3, batch_size=4)
    assert feats.features.shape == (10, 64) and feats.logits.shape == (10, 3)
    with torch.no_grad():
        again = small_cnn.classifier(torch.from_numpy(feats.features)).numpy()
        direct = small_cnn(x).numpy()
    np.testing.assert_allclose(again, feats.logits, atol=1e-5)
    np.testing.assert_allclose(direct, feats.logits, atol=1e-5)
    np.testing.assert_allclose(feats.probabilities.sum(1), 1.0, atol=1e-6)
    assert np.array_equal(feats.correct, direct.argmax(1) == np.arange(10) % 3)
    assert feats.images.shape == (10, 32, 32, 3) and feats.images.dtype == np.uint8
    assert not small_cnn.classifier._forward_hooks, "the hook must be removed"


def test_the_hybrid_vit_head_reads_the_class_token():
    torch.manual_seed(0)
    model = get_model("hybrid_vit", 2).eval()
    assert classifier_head(model) is model.head
    x = torch.randn(3, 3, 64, 64)
    feats = penultimate_features(model, x, keep_images=False)
    assert feats.features.shape == (3, 96) and feats.images is None and feats.labels is None
    with torch.no_grad():
        np.testing.assert_allclose(model.head(torch.from_numpy(feats.features)).numpy(), feats.logits, atol=1e-5)


def test_classifier_heads_of_the_zoo_and_of_an_unknown_model():
    resnet = get_model("resnet18", 2)
    assert classifier_head(resnet) is resnet.fc
    eff = get_model("efficientnet_b0", 2)
    assert classifier_head(eff) is eff.classifier[-1]
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    assert classifier_head(plain) is plain[3]
    with pytest.raises(ValueError, match="nn.Linear"):
        classifier_head(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1)))


def test_features_from_a_phantom_carry_concepts_and_artefacts():
    from medxai_lite import load_dataset

    torch.manual_seed(0)
    ds = load_dataset("phantom-brain-mri", "test", image_size=32, n=12, shortcut=1.0)
    feats = penultimate_features(SmallCNN(num_classes=4, width=8).eval(), ds, n=10)
    assert len(feats) == 10 and feats.classes == tuple(ds.classes) and feats.dataset == "phantom-brain-mri"
    assert np.array_equal(feats.labels, ds.labels[:10]) and np.array_equal(feats.index, np.arange(10))
    assert np.array_equal(feats.artefact, ds.meta["artefact"][:10]) and feats.artefact.any()
    np.testing.assert_array_equal(feats.concepts, ds.concepts[:10])
    colours = feats.colours(["necrotic core"])
    assert list(colours) == ["class", "prediction", "concept: necrotic core", "shortcut artefact"]
    assert set(colours["prediction"]) <= {"correct", "wrong"}
    assert "artefact" in feats.hover_text()[int(np.flatnonzero(feats.artefact)[0])]
    with pytest.raises(ValueError, match="concepts"):
        feats.colours(["no such concept"])


def test_a_model_in_training_mode_is_refused_and_hooks_go_after_an_error(small_cnn):
    model = SmallCNN(num_classes=2, width=8)          # training mode
    with pytest.raises(RuntimeError, match="training mode"):
        penultimate_features(model, torch.randn(2, 3, 16, 16))
    stray = torch.nn.Linear(64, 3)                      # not part of the model: never runs
    with pytest.raises(RuntimeError, match="head"):
        penultimate_features(small_cnn, torch.randn(2, 3, 16, 16), head=stray)
    assert not stray._forward_hooks
    with pytest.raises(ValueError, match="labels"):
        penultimate_features(small_cnn, torch.randn(2, 3, 16, 16), labels=[0, 1, 2])


def test_mix_features_takes_each_item_from_the_chosen_version():
    def feats(offset, artefact):
        return LatentFeatures(features=np.full((4, 2), offset, np.float32), logits=np.zeros((4, 2), np.float32),
                              labels=np.array([0, 1, 0, 1]), classes=("a", "b"), artefact=np.array(artefact),
                              index=np.arange(4))

    a, b = feats(0.0, [False, True, False, True]), feats(1.0, [True, False, True, False])
    mixed = mix_features(a, b, [True, True, False, False])
    assert mixed.features[:, 0].tolist() == [1, 1, 0, 0]
    assert mixed.artefact.tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="take_b"):
        mix_features(a, b, [True])
    other = feats(1.0, [True] * 4)
    other.labels = np.array([1, 1, 1, 1])
    with pytest.raises(ValueError, match="same items"):
        mix_features(a, other, [True] * 4)


# ----------------------------------------------------------------------------------------- projections
@pytest.mark.parametrize("method, params", [("tsne", {"perplexity": 10}),
                                            ("tsne", {"perplexity": 10, "init": "random"}),
                                            ("umap", {"n_neighbors": 10}), ("pca", {})])
def test_projections_are_deterministic_for_a_seed(blobs, method, params):
    x, _ = blobs
    a = project(x, method, seed=3, **params)
    b = project(x, method, seed=3, **params)
    assert a.shape == (60, 2) and a.dtype == np.float32
    assert np.array_equal(a, b), f"{method}: two runs with the same seed differ"
    if method == "umap" or params.get("init") == "random":     # t-SNE's PCA start hardly depends on the seed
        assert not np.array_equal(a, project(x, method, seed=4, **params)), "the seed is not used"


def test_projections_keep_separated_blobs_separated(blobs):
    x, labels = blobs
    for method in ("pca", "tsne", "umap"):
        y = project(x, method, seed=0)
        assert knn_accuracy(y, labels, k=3) == 1.0, method
        assert trustworthiness(x, y, 5) > 0.9, method


@pytest.mark.parametrize("kwargs, word", [
    ({"method": "lle"}, "method"),
    ({"method": "tsne", "n_neighbors": 5}, "n_neighbors"),
    ({"method": "tsne", "perplexity": 60}, "perplexity"),
    ({"method": "umap", "n_neighbors": 1}, "n_neighbors"),
    ({"method": "umap", "min_dist": 2.0}, "min_dist"),
    ({"method": "pca", "seed": -1}, "seed"),
    ({"method": "tsne", "pca_components": 1}, "pca_components"),
])
def test_bad_projection_settings_name_the_parameter(blobs, kwargs, word):
    with pytest.raises(ValueError, match=word):
        project(blobs[0], **kwargs)


def test_bad_features_are_refused():
    with pytest.raises(ValueError, match="2-D"):
        project(np.zeros(10), "pca")
    bad = np.random.default_rng(0).normal(size=(10, 3))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        project(bad, "pca")


# ----------------------------------------------------------------------------------------- quality scores
def test_an_identity_embedding_is_perfectly_trustworthy_and_continuous(blobs):
    x, _ = blobs
    assert trustworthiness(x, x, 10) == pytest.approx(1.0)
    assert continuity(x, x, 10) == pytest.approx(1.0)
    rotated = _line([0, 1, 3, 7, 15]) @ np.array([[0.6, 0.8], [-0.8, 0.6]]) * 3 + 5
    assert trustworthiness(_line([0, 1, 3, 7, 15]), rotated, 2) == pytest.approx(1.0)


def test_trustworthiness_and_continuity_by_hand():
    """Points at 0, 1, 3, 7, 15 on a line; k = 1; N = 5, so the factor is 2 / (N k (2N - 3k - 1)) = 1/15.

    Moving point 4 (at 15) to -0.5, next to point 0: in the map, 0's nearest neighbour becomes 4
    (its rank in X is 4: penalty 4 - 1 = 3) and 4's becomes 0 (rank 4 in X: penalty 3), so
    T = 1 - 6/15 = 0.6. Continuity: 0's true neighbour 1 is 2nd in the map (penalty 1), 4's true
    neighbour 3 is 4th (penalty 3): C = 1 - 4/15 = 11/15.
    Swapping points 3 and 4 instead: T = C = 1 - (3 + 1)/15 = 11/15.
    """
    x = _line([0, 1, 3, 7, 15])
    moved = _line([0, 1, 3, 7, -0.5])
    assert trustworthiness(x, moved, 1) == pytest.approx(9 / 15)
    assert continuity(x, moved, 1) == pytest.approx(11 / 15)
    swapped = _line([0, 1, 3, 15, 7])
    assert trustworthiness(x, swapped, 1) == pytest.approx(11 / 15)
    assert continuity(x, swapped, 1) == pytest.approx(11 / 15)
    with pytest.raises(ValueError, match="n_neighbors"):
        trustworthiness(x, moved, 3)
    with pytest.raises(ValueError, match="same points"):
        continuity(x, moved[:4], 1)


def test_silhouette_by_hand_and_knn_accuracy():
    """Two pairs at 0, 1 and 10, 11: s(0) = (10.5 - 1) / 10.5, s(1) = (9.5 - 1) / 9.5, symmetric."""
    x = _line([0, 1, 10, 11])
    scores = cluster_separation(x, {"pairs": ["a", "a", "b", "b"], "crossed": [0, 1, 0, 1], "one": [0] * 4})
    assert scores["pairs"] == pytest.approx((9.5 / 10.5 + 8.5 / 9.5) / 2)
    assert scores["crossed"] < 0 and np.isnan(scores["one"])
    x2 = _line(np.r_[np.arange(10), np.arange(10) + 100])
    assert knn_accuracy(x2, np.repeat([0, 1], 10), k=3) == 1.0
    with pytest.raises(ValueError, match="labels"):
        knn_accuracy(x2, [0, 1])


def test_class_islands_count_the_pieces_of_each_class():
    x = _line([0, 1, 2, 3, 100, 101, 102, 103, 50, 51, 52, 53, 54])
    labels = np.array([0] * 8 + [1] * 5)
    assert class_islands(x, labels, k=2).tolist() == [2, 1]       # class 0 sits in two groups of four
    assert class_islands(x, labels, k=4).tolist() == [1, 1]       # islands of k points or fewer are not seen
    assert class_islands(x[:9], [0] * 8 + [1], k=2).tolist() == [2, 1]
    with pytest.raises(ValueError, match="labels"):
        class_islands(x, labels[:3])


def test_sensitivity_grid_and_seed_stability(blobs):
    x, labels = blobs
    feats = LatentFeatures(features=x, logits=np.zeros((60, 3), np.float32), labels=labels, classes=("a", "b", "c"))
    grid = sensitivity_grid(feats, perplexities=(5, 15), n_neighbors=(5, 10), min_dists=(0.0, 0.5), k=5)
    assert len(grid.table) == 6 and list(grid.embeddings) == list(grid.table["setting"])
    assert grid.table["trustworthiness"].between(0, 1).all() and grid.table["knn accuracy"].notna().all()
    assert (grid.table["islands per class"] >= 1).all()
    assert grid.table.loc[grid.table.method == "UMAP", "perplexity"].isna().all()
    stable = seed_stability(x, "pca", seeds=(0, 1, 2))
    assert len(stable.disparity) == 3 and stable.disparity["disparity"].max() < 1e-10   # PCA has no seed
    tsne = seed_stability(x, "tsne", seeds=(0, 1), perplexity=10, init="random")
    assert 0 < tsne.disparity["disparity"].iloc[0] < 1
    assert set(tsne.summary()) == {"mean disparity", "max disparity", "trustworthiness range", "continuity range"}
    with pytest.raises(ValueError, match="seeds"):
        seed_stability(x, "pca", seeds=(1, 1))


# ----------------------------------------------------------------------------------------- figures
def _scatter(n=12):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(n, 2))
    colours = {"class": np.array(["a", "b", "c"] * (n // 3), dtype=object),
               "concept: size": rng.uniform(size=n), "artefact": np.array([True, False] * (n // 2))}
    return emb, colours


def test_latent_scatter_switches_colourings_with_a_dropdown():
    emb, colours = _scatter()
    fig = latent_scatter(emb, colours, hover=[f"p{i}" for i in range(12)], axis_label="t-SNE", title="map")
    assert len(fig.data) == 3 + 1 + 2
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["class", "concept: size", "artefact"]
    assert [b.args[0]["visible"] for b in buttons] == [[True] * 3 + [False] * 3, [False] * 3 + [True] + [False] * 2,
                                                       [False] * 4 + [True] * 2]
    assert [t.visible for t in fig.data] == buttons[0].args[0]["visible"]
    assert fig.layout.xaxis.title.text == "t-SNE 1" and fig.layout.yaxis.title.text == "t-SNE 2"
    assert fig.data[3].marker.colorbar.title.text == "concept: size"
    assert sorted(int(i) for t in fig.data[:3] for i in t.customdata) == list(range(12))
    with pytest.raises(ValueError, match="colours"):
        latent_scatter(emb, {"class": colours["class"][:5]})
    with pytest.raises(ValueError, match="embedding"):
        latent_scatter(emb[:, :1], colours)


def test_thumbnails_keep_grey_images_grey():
    grey = np.repeat(np.linspace(0, 255, 64 * 64).reshape(64, 64, 1), 3, -1).astype(np.uint8)
    colour = np.zeros((64, 64, 3), np.uint8)
    colour[..., 0] = 200
    from PIL import Image

    uris = thumbnail_uris([grey, colour], size=32, format="png")
    decoded = [Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))) for u in uris]
    assert [d.mode for d in decoded] == ["L", "RGB"] and decoded[0].size == (32, 32)
    assert thumbnail_uris([grey])[0].startswith("data:image/webp;base64,")
    with pytest.raises(ValueError, match="format"):
        thumbnail_uris([grey], format="gif")


def _html_parts(emb, colours, n=12):
    images = np.random.default_rng(1).integers(0, 255, size=(n, 24, 24, 3), dtype=np.uint8)
    captions = [f"image {i}: class {colours['class'][i]}" for i in range(n)]
    out = with_thumbnails(latent_scatter(emb, colours), images, captions=captions, div_id="lat-test", size=16)
    script = re.search(r'<script type="text/javascript">\n(.*)\n</script>', out.html, re.S).group(1)
    return out, script, captions


def test_thumbnail_html_holds_the_plot_the_images_and_the_handler():
    emb, colours = _scatter()
    out, script, captions = _html_parts(emb, colours)
    html = out.html
    assert out._repr_html_() == html and out.n_points == 12
    assert 'id="lat-test"' in html and 'id="lat-test-thumb"' in html and 'id="lat-test-caption"' in html
    thumbs = json.loads(re.search(r"thumbs = (\[.*?\]), captions", script).group(1))
    assert len(thumbs) == 12 and all(t.startswith("data:image/webp;base64,") for t in thumbs)
    assert json.loads(re.search(r'var id = ("[^"]+")', script).group(1)) == "lat-test"
    assert "plotly_hover" in script and "cdn.plot.ly" in script
    default = with_thumbnails(latent_scatter(emb, colours), np.zeros((12, 8, 8, 3), np.uint8))
    assert f'id="{default.div_id}"' in default.html and f'id="{default.div_id}-thumb"' in default.html
    assert f'var id = "{default.div_id}"' in default.html
    with pytest.raises(ValueError, match="images"):
        with_thumbnails(latent_scatter(emb, colours), np.zeros((5, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="div_id"):
        with_thumbnails(latent_scatter(emb, colours), np.zeros((12, 8, 8, 3), np.uint8), div_id="a b")


_HARNESS = r"""
const fs = require("fs");
const code = fs.readFileSync(process.argv[2], "utf8");
const mode = process.argv[3];
const els = {};
const ids = JSON.parse(process.argv[4]);
function el(id) {
  if (!ids.includes(id)) return null;
  if (!els[id]) els[id] = {id: id, attrs: {}, style: {}, src: "", textContent: "",
    getAttribute(k) { return k in this.attrs ? this.attrs[k] : null; }, setAttribute(k, v) { this.attrs[k] = v; }};
  return els[id];
}
const handlers = {};
let plotted = null, appended = null;
const Plotly = {newPlot(gd, data, layout, config) {
  plotted = {id: gd.id, traces: data.length};
  gd.on = (name, fn) => { handlers[name] = fn; };
  return Promise.resolve(gd);
}};
global.window = mode === "present" ? {Plotly: Plotly} : {};
global.document = {
  getElementById: el,
  querySelector: () => null,
  createElement: () => ({attrs: {}, listeners: {}, setAttribute(k, v) { this.attrs[k] = v; },
                         addEventListener(k, fn) { this.listeners[k] = fn; }}),
  head: {appendChild(s) { appended = s; }},
};
eval(code);
(async () => {
  if (mode === "absent") { window.Plotly = Plotly; appended.listeners.load(); }
  await new Promise(r => setTimeout(r, 0));
  handlers.plotly_hover({points: [{customdata: 5}]});
  const img = el(ids[1]), cap = el(ids[2]);
  console.log(JSON.stringify({plotted, src: img.src, visible: img.style.visibility, caption: cap.textContent,
                              loaded: appended ? appended.src : null, click: "plotly_click" in handlers}));
})();
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node.js is not installed")
@pytest.mark.parametrize("mode", ["present", "absent"])
def test_the_hover_handler_shows_the_hovered_thumbnail_in_node(tmp_path, mode):
    """Runs the page's script under node.js with a stub DOM and a stub Plotly: with plotly.js on the
    page already, and without it (the script then loads it from the CDN and draws on load)."""
    emb, colours = _scatter()
    out, script, captions = _html_parts(emb, colours)
    thumbs = json.loads(re.search(r"thumbs = (\[.*?\]), captions", script).group(1))
    (tmp_path / "page.js").write_text(script)
    (tmp_path / "harness.js").write_text(_HARNESS)
    ids = json.dumps(["lat-test", "lat-test-thumb", "lat-test-caption"])
    run = subprocess.run(["node", str(tmp_path / "harness.js"), str(tmp_path / "page.js"), mode, ids],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["plotted"] == {"id": "lat-test", "traces": 6} and result["click"]
    assert result["src"] == thumbs[5] and result["visible"] == "visible" and result["caption"] == captions[5]
    assert (result["loaded"] is None) == (mode == "present")
    if mode == "absent":
        assert result["loaded"].startswith("https://cdn.plot.ly/plotly-")


def test_projection_grid_titles_every_panel():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    emb, colours = _scatter()
    fig = plot_projection_grid({"t-SNE perplexity=5": emb, "UMAP n_neighbors=5": emb + 1}, colours["class"],
                               style=colours["artefact"], style_title="artefact",
                               subtitles={"t-SNE perplexity=5": "T = 0.91"}, ncols=2, title="grid")
    axes = [a for a in fig.axes if a.has_data()]
    assert [a.get_title() for a in axes] == ["t-SNE perplexity=5\nT = 0.91", "UMAP n_neighbors=5"]
    assert [a.get_xlabel() for a in axes] == ["t-SNE 1", "UMAP 1"]
    plt.close(fig)
    with pytest.raises(ValueError, match="groups"):
        plot_projection_grid({"a": emb}, colours["class"][:3])
