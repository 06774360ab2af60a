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
