"""The text-based family: captioner, VQA / dialogue, retrieval and template reports.

Known answers: a captioner overfits 16 reports; soft attention finds the one cell that carries a
word's evidence; a VQA model beats the majority answer on held-out questions; an image retrieves
its own report; a template is filled with the answers it is given; the cache returns the same
weights; bad input is refused by name.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from medxai_lite import explain
from medxai_lite.data import load_dataset
from medxai_lite.metrics.text import bleu
from medxai_lite.models import SmallCNN
from medxai_lite.models import text as T


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return SmallCNN(num_classes=4, width=8).eval()


@pytest.fixture(scope="module")
def brain():
    return load_dataset("phantom-brain-mri", "train", image_size=64, n=160, seed=0)


def test_a_vocabulary_round_trips_a_report_and_marks_unknown_words():
    vocab = T.Vocabulary.build(["A 23 mm mass in the sella.", "Normal brain."])
    ids = vocab.encode("a 23 mm mass in the sella.")
    assert ids[0] == 1 and ids[-1] == 2 and vocab.decode(ids[1:]) == "a 23 mm mass in the sella"
    assert vocab.encode("a purple mass", bos_eos=False)[1] == 3          # <unk>
    assert vocab.decode([5, 2, 6]) == vocab.words[5]                      # stops at <eos>


def test_the_captioner_overfits_sixteen_reports(brain, classifier):
    grid, _ = T.grid_features(classifier, torch.stack([brain[i]["image"] for i in range(16)]))
    captions = list(brain.captions[:16])
    dec, vocab, history = T.train_captioner(grid, captions, epochs=120, batch_size=16, lr=5e-3, dropout=0.0,
                                            doubly_stochastic=0.0, seed=0)
    assert history[-1] < history[0] / 10
    ids, alpha = dec.generate(grid, 48)
    generated = [vocab.decode(row.tolist()) for row in ids]
    assert bleu(generated, captions)["bleu_4"] > 0.9
    assert alpha.shape[:2] == ids.shape and torch.allclose(alpha.sum(-1), torch.ones(alpha.shape[:2]), atol=1e-5)


def _one_cell_task(n: int, seed: int):
    """Grid features [n, 8, 4, 4] of weak noise; one random cell per item carries a strong vector
    that says "left" or "right"; the report is "finding on the left" or "... right"."""
    g = torch.Generator().manual_seed(seed)
    grid = 0.1 * torch.randn(n, 8, 4, 4, generator=g).abs()
    cell = torch.randint(0, 16, (n,), generator=g)
    side = torch.randint(0, 2, (n,), generator=g)
    signal = torch.tensor([[3.0, 0, 3, 0, 3, 0, 3, 0], [0, 3.0, 0, 3, 0, 3, 0, 3]])
    grid.view(n, 8, 16)[torch.arange(n), :, cell] += signal[side]
    captions = [f"finding on the {'left' if s else 'right'}" for s in side.tolist()]
    return grid, cell, captions


def test_soft_attention_looks_at_the_cell_that_carries_the_word():
    grid, cell, captions = _one_cell_task(400, 0)
    dec, vocab, _ = T.train_captioner(grid, captions, epochs=15, batch_size=32, lr=5e-3, seed=0, hidden=64,
                                      embed=16, att_dim=32)
    test_grid, test_cell, test_captions = _one_cell_task(100, 1)
    ids, alpha = dec.generate(test_grid, 8)
    words = [vocab.decode(r.tolist()).split() for r in ids]
    assert [" ".join(w) for w in words] == test_captions
    side_step = [w.index(c.split()[-1]) for w, c in zip(words, test_captions)]
    peak = alpha[torch.arange(100), torch.tensor(side_step)].argmax(-1)
    assert (peak == test_cell).float().mean() >= 0.9            # chance: 1/16


def test_a_decoder_without_attention_has_no_maps_and_still_learns():
    grid, _, captions = _one_cell_task(200, 0)
    dec, vocab, history = T.train_captioner(grid, captions, attention=False, epochs=6, batch_size=32, seed=0,
                                            hidden=64, embed=16)
    ids, alpha = dec.generate(grid[:4], 8)
    assert alpha is None and history[-1] < history[0]


def test_the_vqa_model_beats_the_majority_answer_on_held_out_images(brain, classifier):
    grid, _ = T.grid_features(classifier, brain)
    net, vocab, answers, _ = T.train_vqa(grid[:120], brain.qa[:120], epochs=30, seed=0)
    model = T.VisualQA(classifier, net, vocab, answers).eval()
    images = torch.stack([brain[i]["image"] for i in range(120, 160)])
    rows = [(i, q, a) for i, pairs in enumerate(brain.qa[120:]) for q, a in pairs]
    predicted = [model.answer(images[i:i + 1], q)[0] for i, q, _ in rows]
    accuracy = np.mean([p == a for p, (_, _, a) in zip(predicted, rows)])
    train_answers = [a for pairs in brain.qa[:120] for _, a in pairs]
    majority = max(set(train_answers), key=train_answers.count)
    baseline = np.mean([a == majority for _, _, a in rows])
    assert accuracy > baseline + 0.2, (accuracy, baseline)


def test_dialogues_refer_to_the_finding_as_it_after_the_first_turn_and_the_history_is_read():
    qa = [[("What is the diagnosis?", "glioma"), ("Is there a tumour?", "yes"), ("Where is the lesion?", "sella"),
           ("How large is the lesion?", "small")]]
    turns = T.dialogues(qa)[0]
    assert turns == [("Is there a tumour?", "yes"), ("Where is it?", "sella"), ("How large is it?", "small"),
                     ("What is the diagnosis?", "glioma")]
    torch.manual_seed(0)
    net = T.VQANet(30, 5, 8, history=True).eval()
    grid, q = torch.randn(1, 8, 2, 2), torch.tensor([[4, 5, 6]])
    a = net(grid, q, torch.tensor([[7, 8, 9]]))[0]
    b = net(grid, q, torch.tensor([[10, 11, 0]]))[0]
    assert not torch.allclose(a, b)


def test_a_dialogue_keeps_its_history(brain, classifier, monkeypatch):
    seen = []
    torch.manual_seed(0)
    vocab = T.Vocabulary.build([q for pairs in brain.qa for q, _ in pairs] + ["yes no sella"])
    model = T.VisualQA(classifier, T.VQANet(len(vocab), 2, 64, history=True).eval(), vocab, ["yes", "no"])
    original = model.answer

    def spy(images, questions, histories=None, **kw):
        seen.append(histories[0])
        return original(images, questions, histories, **kw)

    monkeypatch.setattr(model, "answer", spy)
    turns = model.dialogue(brain[0]["image"], ["Is there a tumour?", "Where is it?"])
    assert seen[0] == "" and seen[1] == f"Is there a tumour? {turns[0][1]} ."
    assert turns[1][2].shape == (64, 64) and 0 <= turns[1][2].min() and turns[1][2].max() <= 1


def test_an_image_retrieves_its_own_report(brain, classifier):
    retriever = T.ReportRetriever(classifier, brain).eval()
    images = torch.stack([brain[i]["image"] for i in (3, 17)])
    assert retriever.generate(images) == [brain.captions[3], brain.captions[17]]
    result = explain("report_retrieval", retriever, images, k=2)
    assert result.kind == "text" and result.value == [brain.captions[3], brain.captions[17]]
    np.testing.assert_array_equal(result.extras["indices"][:, 0], [3, 17])
    np.testing.assert_allclose(result.extras["distances"][:, 0], 0, atol=1e-5)


def test_a_template_is_filled_with_the_answers(brain, classifier, monkeypatch):
    vocab = T.Vocabulary.build(["a"])
    vqa = T.VisualQA(classifier, T.VQANet(len(vocab), 1, 64), vocab, ["x"]).eval()
    answers = {"Is there a tumour?": ["yes", "no"], "How large is the lesion?": ["small", "small"],
               "Where is the lesion?": ["sella", "sella"], "What is the diagnosis?": ["pituitary", "no tumour"]}
    monkeypatch.setattr(vqa, "answer", lambda images, q, *a, **k: answers[q])
    reports = T.TemplateReporter(vqa, "phantom-brain-mri").generate(torch.zeros(2, 3, 64, 64))
    assert reports == ["Axial T1 post-contrast MRI: a small enhancing mass in the sella, in keeping with a pituitary "
                       "tumour.",
                       "Axial T1 post-contrast MRI: normal brain parenchyma, no mass or abnormal enhancement."]


def test_word_attention_averages_the_lesion_words_only():
    maps = np.stack([np.full((2, 2), v, np.float32) for v in (0.1, 0.5, 0.9)])
    caption = T.Caption("a mass here", ["a", "mass", "lesion"], maps)
    np.testing.assert_allclose(T.word_attention(caption), 0.7)
    assert T.word_attention(T.Caption("normal", ["normal"], maps[:1])) is None
    assert T.word_attention(T.Caption("a mass", ["a", "mass"], None)) is None


def test_a_trained_text_model_comes_back_from_the_cache(tmp_cache):
    from medxai_lite.models import get_trained_model

    clf = get_trained_model("phantom-skin", "small_cnn", image_size=32, n_train=32, n_val=16, n_test=16, epochs=1,
                            progress=False)
    first = T.get_trained_vqa("phantom-skin", classifier=clf, epochs=1)
    second = T.get_trained_vqa("phantom-skin", classifier=clf, epochs=1)
    assert first.report.cache_key == second.report.cache_key and first.answers == second.answers
    for a, b in zip(first.net.state_dict().values(), second.net.state_dict().values()):
        assert torch.equal(a, b)
    cap = T.get_trained_captioner("phantom-skin", classifier=clf, epochs=1)
    assert cap.report.kind == "captioner" and len(cap.generate(torch.zeros(1, 3, 32, 32))) == 1
    train = load_dataset("phantom-skin", "train", image_size=32, n=32, seed=0)
    counts = first.report.answer_counts["What is the diagnosis?"]
    assert counts == {c: int((train.labels == k).sum()) for k, c in enumerate(train.classes) if (train.labels == k).any()}
    built = T.get_report_retriever("phantom-skin", classifier=clf)
    x = torch.stack([train[i]["image"] for i in (0, 5)])
    assert built.generate(x) == [train.captions[0], train.captions[5]]
    T._FEATURES.clear()                                   # the second call reads the index from the cache
    loaded = T.get_report_retriever("phantom-skin", classifier=clf)
    assert not T._FEATURES and loaded.reports == built.reports
    np.testing.assert_allclose(loaded.features, built.features)


def test_bad_input_is_refused_by_name(brain, classifier):
    with pytest.raises(ValueError, match="feature_norm"):
        T.CaptionDecoder(10, 8, feature_norm="batch")
    with pytest.raises(ValueError, match="captions must hold one report per feature grid"):
        T.train_captioner(torch.zeros(2, 8, 2, 2), ["a"])
    with pytest.raises(ValueError, match="unknown text-model setting"):
        T.get_trained_vqa("phantom-skin", classifier=classifier, hidden_size=3)
    with pytest.raises(ValueError, match="references must be a dataset with report sentences"):
        T.ReportRetriever(classifier, [1, 2])
    with pytest.raises(ValueError, match="language model|writes no text"):
        explain("captioner", classifier, torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="question must be a non-empty string"):
        vocab = T.Vocabulary.build(["a"])
        explain("vqa", T.VisualQA(classifier, T.VQANet(len(vocab), 1, 64), vocab, ["x"]).eval(),
                torch.zeros(1, 3, 64, 64), question="")


def test_asking_several_questions_about_one_batch_runs_the_classifier_once(brain, classifier):
    T._GRID_MEMO.clear()
    vocab = T.Vocabulary.build(["is there a tumour"])
    model = T.VisualQA(classifier, T.VQANet(len(vocab), 2, 64), vocab, ["yes", "no"]).eval()
    calls = []
    handle = classifier.register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        x = torch.stack([brain[i]["image"] for i in range(4)])
        first = model.answer(x, "Is there a tumour?", with_maps=True)[1]
        model.answer(x, "Where is the lesion?")
        assert len(calls) == 1
        x.mul_(0.5)                                   # an in-place change is seen
        second = model.answer(x, "Is there a tumour?", with_maps=True)[1]
        assert len(calls) == 2 and not np.allclose(first, second)
        model.answer(x.clone(), "Is there a tumour?")  # another tensor, another pass
        assert len(calls) == 3
        y = x.clone()
        model.answer(y, "Is there a tumour?")
        extra = classifier.features.register_forward_hook(lambda m, i, o: None)
        try:
            model.answer(y, "Is there a tumour?")        # a hook added since: the classifier runs again
        finally:
            extra.remove()
        assert len(calls) == 5
    finally:
        handle.remove()


def test_the_text_figures_label_what_they_show():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medxai_lite.viz.text import _wrap, plot_answer_maps, plot_dialogue, plot_reports, plot_word_attention

    assert _wrap("Q1?  ->  a\nQ2?  ->  b", 40) == "Q1?  ->  a\nQ2?  ->  b"          # line breaks survive
    image, mask = torch.zeros(3, 16, 16), np.zeros((16, 16), bool)
    mask[4:8, 4:8] = True
    maps = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    fig = plot_word_attention(image, ["a", "mass", "here"], maps, mask=mask, highlight=("mass",), title="t")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["a", "mass", "here"] and "attention" in fig.axes[-1].get_ylabel()
    with pytest.raises(ValueError, match="one map per word"):
        plot_word_attention(image, ["a", "b", "c", "d"], maps)
    fig = plot_dialogue(image, [("Q?", "yes", maps[0]), ("Where is it?", "sella", maps[1])], truths=["yes", "no"],
                        mask=mask)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert panels[1].title.get_color() == "#c62828" and "(true: no)" in panels[1].get_title()
    assert any("attention" in ax.get_ylabel() for ax in fig.axes)
    fig = plot_answer_maps([image, image], maps[:2], ["A: yes (true: yes)", "A: no (true: yes)"], masks=[mask, mask])
    assert len([ax for ax in fig.axes if ax.get_title()]) == 2
    fig = plot_reports(image, {"reference": "a report", "generated": "another"}, mask=mask)
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert texts == ["reference", "a report", "generated", "another"]
    with pytest.raises(ValueError, match="reports"):
        plot_reports(image, {})
    plt.close("all")


def test_word_attention_sits_on_the_cam_grid_and_each_word_gets_its_own_step():
    """A VQA net attending only cell (1, 1) of ResNet18's 2 x 2 grid at 64 px gives a map peaking
    on that cell's receptive-field centre (32, 32), where the aligned Grad-CAM of the same grid
    puts it (plain resizing put it at (48, 48)). A caption whose generation emitted <bos> between
    two words keeps each word's own step: "mass" (step 2) gets the map of cell 3, not of step 1."""
    from medxai_lite.explain.cam import upsample_registered
    from medxai_lite.models import get_model

    torch.manual_seed(0)
    clf = get_model("resnet18", 3).eval()
    x = torch.randn(1, 3, 64, 64)
    vocab = T.Vocabulary([T.PAD, T.BOS, T.EOS, T.UNK, "a", "mass", "left"])
    focus = torch.zeros(1, 4)
    focus[0, 3] = 1.0

    class Fixed(T.VQANet):
        def forward(self, grid, q, h=None):
            return torch.zeros(len(grid), 1), focus.expand(len(grid), 4)

    _, maps = T.VisualQA(clf, Fixed(len(vocab), 1, feat_dim=512), vocab, ["yes"]).answer(x, "a mass", with_maps=True)
    assert np.unravel_index(int(maps[0].argmax()), maps[0].shape) == (32, 32)
    np.testing.assert_allclose(maps[0], upsample_registered(focus.view(1, 2, 2), (64, 64), 32, 0.0)[0].numpy(),
                               atol=1e-6)

    class Steps(T.CaptionDecoder):
        @torch.no_grad()
        def generate(self, grid, max_len=40):
            alpha = torch.zeros(1, 4, 4)
            for step, cell in enumerate((0, 1, 3, 2)):
                alpha[0, step, cell] = 1.0
            return torch.tensor([[4, 1, 5, 2]]), alpha              # "a" <bos> "mass" <eos>

    caption = T.Captioner(clf, Steps(len(vocab), feat_dim=512), vocab).describe(x)[0]
    assert caption.words == ["a", "mass"] and caption.text == "a mass" and caption.maps.shape == (2, 64, 64)
    assert np.unravel_index(int(caption.maps[1].argmax()), (64, 64)) == (32, 32)   # cell 3's centre
