"""The package with its models on a GPU and the datasets' images on the CPU, as on Colab.

CI has no GPU, so these tests run under the pretend GPU of ``fakecuda.py``: every tensor knows the
device the code thinks it is on, and a mix-up or a ``.numpy()`` of a "GPU" tensor fails as CUDA
would, while the arithmetic stays on the CPU. Each test therefore also checks that the numbers
are those of the same call on the CPU. The first tests check the pretend GPU itself. (The
registry's methods are covered in ``test_explain.py``; these are the public helpers that take a
model and images outside ``explain``.)
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from fakecuda import fake_cuda

from medxai_lite.models.vit import HybridViT
from medxai_lite.models.zoo import SmallCNN


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return SmallCNN(num_classes=3, width=4).eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def labels():
    return torch.tensor([0, 1, 2, 0])


def _on_gpu(model):
    """A copy of ``model`` on the (pretend) GPU; call inside ``fake_cuda()``."""
    moved = copy.deepcopy(model).to("cuda")
    assert next(moved.parameters()).device.type == "cuda"
    return moved


# --------------------------------------------------------------------------- the pretend GPU itself


def test_the_pretend_gpu_fails_where_cuda_fails_and_passes_where_it_passes(cnn, images):
    with fake_cuda() as mode:
        images = mode.host(images)                                 # as a dataset hands them out
        gpu = _on_gpu(cnn)
        with pytest.raises(RuntimeError, match="same device"):
            gpu(images)                                            # CPU images, GPU weights
        out = gpu(images.to("cuda"))
        assert out.device.type == "cuda" and images.device.type == "cpu"
        with pytest.raises(TypeError, match="cuda"):
            out.detach().numpy()
        with pytest.raises(TypeError, match="cuda"):
            np.asarray(out.detach())
        with pytest.raises(RuntimeError, match="same device"):     # a new (CPU) head on GPU features
            torch.nn.Linear(3, 2)(out)
        with pytest.raises(RuntimeError, match="same device"):
            out + torch.from_numpy(np.ones((4, 3), np.float32))
        assert (out * torch.tensor(2.0)).device.type == "cuda"    # CPU scalars mix, as on CUDA
        assert torch.zeros(3, device=out.device).device.type == "cuda"
        np.testing.assert_allclose(out.detach().cpu().numpy(), cnn(images).detach().numpy(), rtol=1e-6)
    assert torch.cuda.is_available() is False or torch.version.cuda is not None   # patches undone


# --------------------------------------------------------------------------- helpers outside explain()


def test_attention_weights_and_their_figure_with_a_gpu_vit_and_cpu_images(images):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medxai_lite.explain.attention import attention_entropy, attention_weights, rollout_entropy
    from medxai_lite.viz.attention import plot_attention_heads

    torch.manual_seed(0)
    vit = HybridViT(num_classes=3, dim=16, depth=2, heads=2, grid=4).eval()
    expected = attention_weights(vit, images)
    with fake_cuda() as mode:
        gpu, images = _on_gpu(vit), mode.host(images)
        weights = attention_weights(gpu, images)
        assert weights.device.type == "cuda"
        entropy, rollout = attention_entropy(gpu, images), rollout_entropy(gpu, images)
        fig = plot_attention_heads(images[0], weights[:, 0])
    plt.close(fig)
    np.testing.assert_allclose(weights.cpu().numpy(), expected.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(entropy["normalised"], attention_entropy(vit, images)["normalised"], rtol=1e-5)
    np.testing.assert_allclose(rollout["normalised"], rollout_entropy(vit, images)["normalised"], rtol=1e-5)


def test_influence_scores_and_self_influence_with_a_gpu_model(cnn, images, labels):
    from medxai_lite.explain.examples import influence_scores, self_influence

    expected = influence_scores(cnn, images, labels, (images, labels))
    expected_self = self_influence(cnn, (images, labels))
    with fake_cuda() as mode:
        gpu, images, labels = _on_gpu(cnn), mode.host(images), mode.host(labels)
        got = influence_scores(gpu, images, labels, (images, labels))
        got_self = self_influence(gpu, (images, labels))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(got_self, expected_self, rtol=1e-4, atol=1e-8)


def test_a_concept_bottleneck_around_a_gpu_classifier(cnn, images):
    from medxai_lite import concepts as C

    names = ["a", "b"]
    cpu_cbm = C.ConceptBottleneckModel.untrained(cnn, names, 3).eval()
    with torch.no_grad():
        expected = cpu_cbm.concepts(images).numpy(), cpu_cbm.predict(images, interventions={"a": 1.0}).numpy()
    with fake_cuda() as mode:
        images = mode.host(images)
        gpu_cbm = C.ConceptBottleneckModel.untrained(_on_gpu(cnn), names, 3).eval()
        assert next(gpu_cbm.bottleneck.parameters()).device.type == "cuda"
        with torch.no_grad():
            got = (gpu_cbm.concepts(images).cpu().numpy(),
                   gpu_cbm.predict(images, interventions={"a": 1.0}).cpu().numpy())
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_intervention_curve_with_the_bottleneck_on_a_gpu(cnn):
    from medxai_lite import concepts as C
    from medxai_lite.data import load_dataset

    data_set = load_dataset("phantom-brain-mri", "test", image_size=32, n=12, seed=0)
    torch.manual_seed(0)
    model = SmallCNN(num_classes=len(data_set.classes), width=4).eval()
    names = list(data_set.concept_names)
    data = C.concept_data(model, data_set)
    expected = C.intervention_curve(C.ConceptBottleneckModel.untrained(model, names, len(data_set.classes)).eval(),
                                    data)
    with fake_cuda():
        gpu = _on_gpu(model)
        gpu_data = C.concept_data(gpu, data_set)
        cbm = C.ConceptBottleneckModel.untrained(gpu, names, len(data_set.classes)).eval()
        got = C.intervention_curve(cbm, gpu_data)
    np.testing.assert_allclose(got["accuracy"], expected["accuracy"])


def test_completeness_with_the_head_of_a_gpu_model_leaves_that_head_as_found(cnn):
    from medxai_lite import concepts as C
    from medxai_lite.latent import classifier_head

    head = classifier_head(cnn)
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(60, head.in_features)).astype(np.float32)
    with torch.no_grad():
        preds = head(torch.from_numpy(feats)).argmax(1).numpy()
    vectors = rng.normal(size=(2, feats.shape[1]))
    expected = C.completeness(feats, preds, head, vectors, epochs=3)
    with fake_cuda():
        gpu = _on_gpu(cnn)
        gpu_head = classifier_head(gpu)
        got = C.completeness(feats, preds, gpu_head, vectors, epochs=3)
        assert gpu_head.weight.device.type == "cuda" and gpu_head.weight.requires_grad
    assert got == pytest.approx(expected)


def test_text_models_moved_whole_to_a_gpu_still_describe_and_answer(cnn, images):
    """A user's ``captioner.to(mx.device())`` moves the decoder too; the wrappers follow it."""
    from medxai_lite.data import load_dataset
    from medxai_lite.models import text as T

    refs = load_dataset("phantom-brain-mri", "train", image_size=32, n=8, seed=0)
    torch.manual_seed(0)
    vocab = T.Vocabulary.build(refs.captions + [q for pairs in refs.qa for q, _ in pairs])
    answers = sorted({a for pairs in refs.qa for _, a in pairs})
    captioner = T.Captioner(cnn, T.CaptionDecoder(len(vocab), 32).eval(), vocab, max_len=6).eval()
    vqa = T.VisualQA(cnn, T.VQANet(len(vocab), len(answers), 32, history=True).eval(), vocab, answers).eval()
    expected = [c.maps for c in captioner.describe(images)], vqa.answer(images, "is there a tumour", with_maps=True)
    with fake_cuda() as mode:
        images = mode.host(images)
        got = ([c.maps for c in _on_gpu(captioner).describe(images)],
               _on_gpu(vqa).answer(images, "is there a tumour", with_maps=True))
    for a, b in zip(got[0], expected[0]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert got[1][0] == expected[1][0]
    np.testing.assert_allclose(got[1][1], expected[1][1], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- training off the zoo's loop


def _same_weights(a, b):
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_allclose(p.detach().cpu().numpy(), q.detach().cpu().numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=name)


def test_train_classifier_and_make_train_fn_train_on_the_gpu(images, labels, monkeypatch):
    """The planted-label classifier and the label-randomisation test's train_fn fit their models on
    mx.device() from CPU images, and give the weights the same seed gives on the CPU (trained in the
    default layout, as the GPU path is: channels-last CPU steps sum in another order)."""
    from medxai_lite.metrics import make_train_fn
    from medxai_lite.models import train as train_mod
    from medxai_lite.models.explainers import train_classifier

    monkeypatch.setattr(train_mod, "CPU_CHANNELS_LAST", False)

    cpu_small = train_classifier(images, labels, num_classes=3, width=4, epochs=2, batch_size=2)
    cpu_fn = make_train_fn(epochs=2, batch_size=2)(images, labels)
    with fake_cuda() as mode:
        x, y = mode.host(images), mode.host(labels)
        gpu_small = train_classifier(x, y, num_classes=3, width=4, epochs=2, batch_size=2)
        gpu_fn = make_train_fn(epochs=2, batch_size=2)(x, y)
        for model in (gpu_small, gpu_fn):
            assert next(model.parameters()).device.type == "cuda" and not model.training
            assert model(x.to("cuda")).device.type == "cuda"
        _same_weights(gpu_small, cpu_small)
        _same_weights(gpu_fn, cpu_fn)
        np.testing.assert_allclose(gpu_small.history, cpu_small.history, rtol=1e-5)


def test_an_untrained_bottleneck_comes_back_ready_for_explain(cnn, images):
    """ConceptBottleneckModel.untrained returns the wrapper in eval mode, as every trained model
    is returned, so explain() takes it without a further .eval()."""
    import medxai_lite as mx
    from medxai_lite import concepts as C

    cbm = C.ConceptBottleneckModel.untrained(cnn, ["a", "b"], 3)
    assert not cbm.training and not any(m.training for m in cbm.modules())
    assert mx.explain("saliency", cbm, images[:2], targets=[0, 1]).maps.shape == (2, 32, 32)


def test_the_mislabelled_model_is_trained_and_loaded_onto_the_gpu(tmp_path, monkeypatch):
    """get_mislabelled_model trains on the (pretend) GPU and, like get_trained_model, hands the
    cached model back on mx.device(), with the CPU run's weights."""
    from medxai_lite.models.explainers import get_mislabelled_model

    kwargs = dict(n_planted=4, image_size=32, n_train=40, width=4, epochs=2, seed=0)
    monkeypatch.setenv("MEDXAI_CACHE", str(tmp_path / "cpu"))
    cpu = get_mislabelled_model("phantom-chest-xray", **kwargs)
    monkeypatch.setenv("MEDXAI_CACHE", str(tmp_path / "gpu"))
    with fake_cuda():
        trained = get_mislabelled_model("phantom-chest-xray", **kwargs)
        loaded = get_mislabelled_model("phantom-chest-xray", **kwargs)
        for model in (trained, loaded):
            assert next(model.parameters()).device.type == "cuda" and not model.training
        _same_weights(loaded, cpu)
        assert loaded.report.planted == cpu.report.planted


def test_the_text_decoders_train_on_the_gpu_from_cpu_features():
    """train_captioner and train_vqa take the CPU grid features the classifier hands out, train on
    mx.device() and leave the decoder there, with the losses of the same seed on the CPU."""
    from medxai_lite.data import load_dataset
    from medxai_lite.models import text as T

    refs = load_dataset("phantom-brain-mri", "train", image_size=32, n=12, seed=0)
    grid = torch.randn(12, 16, 2, 2, generator=torch.Generator().manual_seed(1))
    opts = dict(epochs=2, batch_size=4, seed=0, hidden=16, embed=8, att_dim=8, qa_hidden=16)
    cpu_dec, _, cpu_hist = T.train_captioner(grid, refs.captions, **opts)
    cpu_net, _, _, cpu_losses = T.train_vqa(grid, refs.qa, history=True, **opts)
    with fake_cuda() as mode:
        dec, vocab, hist = T.train_captioner(mode.host(grid), refs.captions, **opts)
        net, _, _, losses = T.train_vqa(mode.host(grid), refs.qa, history=True, **opts)
        for module in (dec, net):
            assert next(module.parameters()).device.type == "cuda" and not module.training
        _same_weights(dec, cpu_dec)
        _same_weights(net, cpu_net)
    np.testing.assert_allclose(hist, cpu_hist, rtol=1e-5)
    np.testing.assert_allclose(losses, cpu_losses, rtol=1e-5)
