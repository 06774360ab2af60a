"""Models that explain in words: a report captioner with and without visual attention, a visual
question-answering (VQA) model and its multi-turn dialogue variant, plus template and retrieval
report generation.

Every model here reads the **grid features of a trained classifier** (the output of
:func:`~medxai_lite.models.target_layer`, the layer the CAMs read: 12 x 12 cells of 256 channels for
the book's default ResNet14 at 96 px) and keeps that classifier frozen. The classifier is the
book's default model of the dataset, so the text chapter trains only the small language parts,
and an attention map of a word lives on the same grid as the classifier's Grad-CAM.

- :class:`CaptionDecoder`: a GRU decoder. With ``attention=True`` it is the soft-attention
  decoder of Show, Attend and Tell (Xu et al. 2015). At step ``t``, with hidden state
  ``h_{t-1}`` and grid features ``a_1..a_L``,

  ``e_ti = w^T tanh(W_a a_i + W_h h_{t-1})``, ``alpha_t = softmax(e_t)``,
  ``z_t = beta_t * sum_i alpha_ti a_i`` with the gate ``beta_t = sigmoid(f_beta(h_{t-1}))``,

  and the word ``y_t`` is predicted from ``h_t = GRU([E y_{t-1}; z_t], h_{t-1})`` and ``z_t``.
  The loss adds the "doubly stochastic" penalty ``lambda * sum_i (1 - sum_t alpha_ti)^2``.
  ``alpha_t`` is the map of the image the decoder read to write word ``y_t``. With
  ``attention=False`` the context is the mean of the grid at every step (Show and Tell,
  Vinyals et al. 2015, with the image also fed at each step): the same decoder without a map.
- :class:`VQANet`: a question GRU whose last state guides one attention hop over the grid
  (stacked attention, Yang et al. 2016), fused by an elementwise product and classified over
  the training answers. With ``history=True`` a second GRU reads the dialogue so far (the
  previous questions and answers), the late-fusion encoder of Visual Dialog (Das et al. 2017).
- :class:`Captioner`, :class:`VisualQA`, :class:`ReportRetriever` and :class:`TemplateReporter`
  wrap a decoder with its classifier. Their ``forward`` is the classifier's (so
  :func:`medxai_lite.explain` picks the predicted class as for any model) and their
  ``generate`` writes text; the registry's text methods call it (``medxai_lite.explain.text``).

Trained models are cached like the classifiers (:func:`get_trained_captioner`,
:func:`get_trained_vqa`): weights plus a JSON file with the vocabularies, keyed by the
classifier's cache key and every setting.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._utils import (atomic_path, cache_dir, cache_lock, check_choice, check_positive_int, device,
                      model_device, profile_settings, set_seed)

__all__ = ["Vocabulary", "grid_features", "pooled_features", "CaptionDecoder", "VQANet", "Captioner", "VisualQA",
           "ReportRetriever", "TemplateReporter", "FeatureNorm", "FEATURE_NORMS", "TEXT_PROFILES", "TextTrainingReport", "get_trained_captioner",
           "get_trained_vqa", "get_report_retriever", "training_features", "train_captioner", "train_vqa", "dialogues", "DIALOGUE_REWRITES", "TEMPLATES",
           "LESION_WORDS", "word_attention"]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"

#: Training settings of the text models per profile (the classifier's profile is separate).
TEXT_PROFILES = {
    "cpu": dict(epochs=6, batch_size=128, lr=3e-3, embed=64, hidden=192, att_dim=128, dropout=0.2,
                doubly_stochastic=0.2, max_len=40, qa_hidden=128, feature_norm="scalar"),
    "paper": dict(epochs=30, batch_size=64, lr=1e-3, embed=128, hidden=512, att_dim=256, dropout=0.3,
                  doubly_stochastic=1.0, max_len=60, qa_hidden=256, feature_norm="scalar"),
}

#: Words of the phantom reports that name the finding itself; their attention maps are the
#: ones scored against the true lesion mask.
LESION_WORDS = ("mass", "lesion", "consolidation", "enhancing", "ring-enhancing", "pigmented", "airspace",
                "patchy", "necrotic")


def _tokens(text: str) -> list[str]:
    from ..metrics.text import tokenize

    return tokenize(text).split()


class Vocabulary:
    """Word <-> index map built from training texts (words seen fewer than ``min_count`` times
    become ``<unk>``). Index 0 is padding, 1 begin, 2 end, 3 unknown."""

    def __init__(self, words: Sequence[str]):
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, texts: Sequence[str], min_count: int = 1) -> "Vocabulary":
        counts = Counter(w for t in texts for w in _tokens(t))
        return cls([PAD, BOS, EOS, UNK] + sorted(w for w, c in counts.items() if c >= min_count))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str, bos_eos: bool = True) -> list[int]:
        ids = [self.index.get(w, 3) for w in _tokens(text)]
        return [1] + ids + [2] if bos_eos else ids

    def decode(self, ids: Sequence[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == 2:
                break
            if i > 2:
                out.append(self.words[i])
        return " ".join(out)


def _pad(seqs: Sequence[Sequence[int]], length: int | None = None) -> torch.Tensor:
    length = length or max(len(s) for s in seqs)
    out = torch.zeros(len(seqs), length, dtype=torch.long)
    for i, s in enumerate(seqs):
        s = list(s)[:length]
        out[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    return out


# ----------------------------------------------------------------------------- features
def _classifier_arch(classifier: nn.Module) -> str:
    from .zoo import infer_arch

    arch = infer_arch(classifier)
    if arch is None:
        raise ValueError("classifier must be a model of the zoo (medxai_lite.models.ARCHS), "
                         f"got {type(classifier).__name__}")
    return arch


def grid_features(classifier: nn.Module, images, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """``(grid [N, D, h, w], logits [N, C])``: the classifier's target-layer activations (the CAM
    grid) and its outputs, for a batch tensor or a dataset, without gradients."""
    from .zoo import target_layer

    layer = target_layer(classifier, _classifier_arch(classifier))
    dev = model_device(classifier)
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"images must be a tensor [N, 3, H, W], got shape {list(images.shape)}")
        chunks = list(images.split(batch_size))
    else:
        chunks = [torch.stack([images[i]["image"] for i in range(s, min(s + batch_size, len(images)))])
                  for s in range(0, len(images), batch_size)]
    grids, logits, seen = [], [], {}
    hook = layer.register_forward_hook(lambda m, i, o: seen.__setitem__("a", o.detach()))
    try:
        with torch.no_grad():
            for x in chunks:
                logits.append(classifier(x.to(dev)).float().cpu())
                grids.append(seen["a"].float().cpu())
    finally:
        hook.remove()
    return torch.cat(grids), torch.cat(logits)


def pooled_features(grid: torch.Tensor) -> np.ndarray:
    """Global-average-pooled grid features ``[N, D]`` (the classifier head's input for ResNets)."""
    return grid.mean((2, 3)).cpu().numpy()


# ----------------------------------------------------------------------------- captioner
#: How grid features are normalised before the language model reads them.
FEATURE_NORMS = ("scalar", "cell")


class FeatureNorm(nn.Module):
    """``"scalar"``: divide every feature by one number, the root mean square of the training
    features (a buffer set by :meth:`fit`), which keeps the cells' relative magnitudes, the cue a
    CAM reads; ``"cell"``: LayerNorm over each cell's channels, which removes that cue (the
    chapter measures what this does to the attention maps)."""

    def __init__(self, feat_dim: int, mode: str = "scalar"):
        super().__init__()
        check_choice("feature_norm", mode, FEATURE_NORMS)
        self.mode = mode
        self.register_buffer("scale", torch.ones(()))
        self.cell = nn.LayerNorm(feat_dim) if mode == "cell" else None

    def fit(self, grid: torch.Tensor) -> "FeatureNorm":
        self.scale.fill_(float(grid.float().pow(2).mean().sqrt().clamp_min(1e-6)))
        return self

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.cell(a) if self.cell is not None else a / self.scale


class CaptionDecoder(nn.Module):
    """GRU report decoder over grid features, with soft visual attention or with the mean feature
    (see the module docstring for the equations)."""

    def __init__(self, vocab_size: int, feat_dim: int = 512, *, attention: bool = True, embed: int = 64,
                 hidden: int = 256, att_dim: int = 128, dropout: float = 0.2, feature_norm: str = "scalar"):
        super().__init__()
        self.attention = bool(attention)
        self.norm = FeatureNorm(feat_dim, feature_norm)
        self.embed = nn.Embedding(vocab_size, embed, padding_idx=0)
        self.init_h = nn.Linear(feat_dim, hidden)
        self.att_a, self.att_h, self.att_w = nn.Linear(feat_dim, att_dim), nn.Linear(hidden, att_dim), nn.Linear(att_dim, 1)
        self.gate = nn.Linear(hidden, feat_dim)
        self.cell = nn.GRUCell(embed + feat_dim, hidden)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden + feat_dim, vocab_size)

    def _prepare(self, grid: torch.Tensor):
        a = self.norm(grid.flatten(2).transpose(1, 2))          # [N, L, D]
        return a, self.att_a(a), torch.tanh(self.init_h(a.mean(1)))

    def _step(self, word, h, a, a_proj):
        if self.attention:
            e = self.att_w(torch.tanh(a_proj + self.att_h(h)[:, None])).squeeze(-1)    # [N, L]
            alpha = torch.softmax(e, dim=1)
            z = torch.sigmoid(self.gate(h)) * (alpha[..., None] * a).sum(1)
        else:
            alpha, z = None, a.mean(1)
        h = self.cell(torch.cat([self.embed(word), z], 1), h)
        return self.out(self.drop(torch.cat([h, z], 1))), h, alpha

    def forward(self, grid: torch.Tensor, captions: torch.Tensor):
        """Teacher forcing: ``captions`` [N, T] begin with ``<bos>``; returns logits [N, T-1, V]
        for the words after it and the attention [N, T-1, L] (``None`` without attention)."""
        a, a_proj, h = self._prepare(grid)
        logits, alphas = [], []
        for t in range(captions.shape[1] - 1):
            out, h, alpha = self._step(captions[:, t], h, a, a_proj)
            logits.append(out)
            alphas.append(alpha)
        return torch.stack(logits, 1), (torch.stack(alphas, 1) if self.attention else None)

    @torch.no_grad()
    def generate(self, grid: torch.Tensor, max_len: int = 40):
        """Greedy decoding: ``(ids [N, T], attention [N, T, L] or None)``; a row stops at ``<eos>``."""
        a, a_proj, h = self._prepare(grid)
        word = torch.full((len(grid),), 1, dtype=torch.long, device=grid.device)
        ids, alphas, done = [], [], torch.zeros(len(grid), dtype=torch.bool, device=grid.device)
        for _ in range(max_len):
            out, h, alpha = self._step(word, h, a, a_proj)
            word = out.argmax(1).masked_fill(done, 0)
            ids.append(word)
            alphas.append(alpha)
            done |= word == 2
            if done.all():
                break
        return torch.stack(ids, 1), (torch.stack(alphas, 1) if self.attention else None)


# ----------------------------------------------------------------------------- VQA / dialogue
class VQANet(nn.Module):
    """Question (and, with ``history``, dialogue) encoder + one attention hop over the grid +
    answer classifier (see the module docstring)."""

    def __init__(self, vocab_size: int, n_answers: int, feat_dim: int = 512, *, history: bool = False,
                 embed: int = 64, hidden: int = 128, att_dim: int = 128, dropout: float = 0.2,
                 feature_norm: str = "scalar"):
        super().__init__()
        self.history = bool(history)
        self.norm = FeatureNorm(feat_dim, feature_norm)
        self.embed = nn.Embedding(vocab_size, embed, padding_idx=0)
        self.q_rnn = nn.GRU(embed, hidden, batch_first=True)
        self.h_rnn = nn.GRU(embed, hidden, batch_first=True) if self.history else None
        q_dim = hidden * (2 if self.history else 1)
        self.att_a, self.att_q, self.att_w = nn.Linear(feat_dim, att_dim), nn.Linear(q_dim, att_dim), nn.Linear(att_dim, 1)
        self.v_proj, self.q_proj = nn.Linear(feat_dim, hidden), nn.Linear(q_dim, hidden)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_answers)

    def _encode(self, rnn, tokens):
        lengths = (tokens != 0).sum(1).clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        return rnn(packed)[1][-1]

    def forward(self, grid: torch.Tensor, question: torch.Tensor, history: torch.Tensor | None = None):
        """Answer logits [N, A] and attention [N, L]."""
        a = self.norm(grid.flatten(2).transpose(1, 2))
        q = self._encode(self.q_rnn, question)
        if self.history:
            if history is None:
                history = torch.zeros(len(question), 1, dtype=torch.long, device=question.device)
            q = torch.cat([q, self._encode(self.h_rnn, history)], 1)
        alpha = torch.softmax(self.att_w(torch.tanh(self.att_a(a) + self.att_q(q)[:, None])).squeeze(-1), 1)
        z = (alpha[..., None] * a).sum(1)
        fused = torch.tanh(self.v_proj(z)) * torch.tanh(self.q_proj(q))
        return self.head(self.drop(fused)), alpha


# ----------------------------------------------------------------------------- wrappers
#: The last batch each classifier encoded: {classifier: (images, layout, versions, grid, logits)}. The
#: images are held, so their memory cannot be reused by another tensor while the entry lives.
_GRID_MEMO: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class _Wrapper(nn.Module):
    """A classifier plus a text part; ``forward`` is the classifier's. The classifier is left as
    given: the text parts read its features without gradients and train only their own weights."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def encode(self, images: torch.Tensor):
        """``(grid, logits)`` of ``images``: the classifier's pass every text model starts from.
        The last batch per classifier is kept, so the
        template, retrieval and captioning wrappers of one classifier, and several questions about
        one batch, run the classifier once; an in-place change of the tensor or of the weights
        bumps a version counter and is seen, and so is a forward hook added to the classifier."""
        layout = (images.data_ptr(), tuple(images.shape), images.stride(), images.dtype, str(images.device))
        hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in self.classifier.modules())
        version = (images._version, sum(p._version for p in self.classifier.parameters()), self.classifier.training,
                   hooks)                  # a hook registered since must see the classifier run
        memo = _GRID_MEMO.get(self.classifier)
        if memo is None or memo[1] != layout or memo[2] != version:     # a detached view of the batch matches
            grid, logits = grid_features(self.classifier, images)
            memo = (images, layout, version, grid, logits)
            _GRID_MEMO[self.classifier] = memo
        return memo[3], memo[4]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or self.classifier.training:
            return self.classifier(images)
        return self.encode(images)[1].to(images.device)

    def _grid(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode(images)[0]


def _upsample(alpha: torch.Tensor, hw: tuple[int, int], size: tuple[int, int], arch: str) -> np.ndarray:
    """Attention over ``L = h * w`` cells -> maps ``[..., H, W]``, each in [0, 1]: every cell at
    its receptive-field centre, as the CAMs of the same grid (:func:`medxai_lite.explain.cam.upsample_grid`)."""
    from ..explain.cam import upsample_grid

    lead = alpha.shape[:-1]
    up = upsample_grid(alpha.detach().float().cpu().reshape(-1, *hw), size, arch)
    up = up - up.amin((1, 2), keepdim=True)
    up = up / up.amax((1, 2), keepdim=True).clamp_min(1e-12)
    return up.reshape(*lead, *size).numpy().astype(np.float32)


@dataclass
class Caption:
    """A generated report: its text, words, and per word the attention map at image resolution
    (``maps`` [T, H, W], ``None`` for a decoder without attention)."""
    text: str
    words: list
    maps: np.ndarray | None = None


class Captioner(_Wrapper):
    """A classifier with a :class:`CaptionDecoder`; ``generate(images)`` writes one report each."""

    def __init__(self, classifier: nn.Module, decoder: CaptionDecoder, vocab: Vocabulary, max_len: int = 40):
        super().__init__(classifier)
        self.decoder, self.vocab, self.max_len = decoder, vocab, int(max_len)

    @property
    def attention(self) -> bool:
        return self.decoder.attention

    def generate(self, images: torch.Tensor) -> list[str]:
        return [c.text for c in self.describe(images)]

    def describe(self, images: torch.Tensor) -> list[Caption]:
        """Reports with their words and, with attention, one map per word."""
        grid = self._grid(images).to(model_device(self.decoder))   # the decoder may sit on another device
        ids, alpha = self.decoder.generate(grid, self.max_len)
        out = []
        arch = _classifier_arch(self.classifier)
        for i in range(len(images)):
            seq = ids[i].tolist()
            # the generation steps that made a word: Vocabulary.decode's rule (stop at <eos>, skip
            # <pad> and <bos>), kept per step so that each word gets its own step's attention
            steps = []
            for t, token in enumerate(seq):
                if token == 2:
                    break
                if token > 2:
                    steps.append(t)
            words = [self.vocab.words[seq[t]] for t in steps]
            maps = None
            if alpha is not None:
                maps = _upsample(alpha[i, steps], tuple(grid.shape[-2:]), tuple(images.shape[-2:]), arch)
            out.append(Caption(" ".join(words), words, maps))
        return out


class VisualQA(_Wrapper):
    """A classifier with a :class:`VQANet`: ``answer(images, questions, histories=None)``."""

    def __init__(self, classifier: nn.Module, net: VQANet, vocab: Vocabulary, answers: Sequence[str]):
        super().__init__(classifier)
        self.net, self.vocab, self.answers = net, vocab, list(answers)

    @property
    def uses_history(self) -> bool:
        return self.net.history

    def answer(self, images: torch.Tensor, questions: str | Sequence[str], histories: Sequence[str] | None = None,
               *, with_maps: bool = False):
        """One answer per image (``questions`` a string asks every image the same). With
        ``with_maps`` also the attention maps ``[N, H, W]`` in [0, 1]."""
        n = len(images)
        questions = [questions] * n if isinstance(questions, str) else list(questions)
        if len(questions) != n:
            raise ValueError(f"questions must be one string or {n} strings, got {len(questions)}")
        if histories is not None and len(histories) != n:
            raise ValueError(f"histories must hold {n} strings, got {len(histories)}")
        dev = model_device(self.net)                  # the VQA net may sit on another device than the classifier
        grid = self._grid(images).to(dev)
        q = _pad([self.vocab.encode(s, bos_eos=False) or [3] for s in questions]).to(dev)
        h = None
        if self.net.history:
            h = _pad([self.vocab.encode(s, bos_eos=False) or [0] for s in (histories or [""] * n)]).to(dev)
        self.net.eval()
        with torch.no_grad():
            logits, alpha = self.net(grid, q, h)
        words = [self.answers[i] for i in logits.argmax(1).tolist()]
        if not with_maps:
            return words
        return words, _upsample(alpha, tuple(grid.shape[-2:]), tuple(images.shape[-2:]),
                                _classifier_arch(self.classifier))

    def dialogue(self, image: torch.Tensor, questions: Sequence[str]) -> list[tuple[str, str, np.ndarray]]:
        """Ask ``questions`` in turn about one image, carrying the history; ``(q, a, map)`` per turn."""
        history, turns = "", []
        for q in questions:
            (a,), maps = self.answer(image[None] if image.ndim == 3 else image, [q],
                                     [history] if self.net.history else None, with_maps=True)
            turns.append((q, a, maps[0]))
            history = f"{history} {q} {a} ." .strip()
        return turns


class ReportRetriever(_Wrapper):
    """Retrieval-based report generation: the report of the nearest training image in the
    classifier's pooled feature space (``sklearn.neighbors.NearestNeighbors``, cosine distance)."""

    def __init__(self, classifier: nn.Module, references, batch_size: int = 64, grid: torch.Tensor | None = None):
        super().__init__(classifier)
        from sklearn.neighbors import NearestNeighbors

        if getattr(references, "captions", None) is None:
            raise ValueError("references must be a dataset with report sentences (dataset.captions), "
                             f"got {type(references).__name__} without them")
        if grid is None:
            grid, _ = grid_features(classifier, references, batch_size)
        elif len(grid) != len(references):
            raise ValueError(f"grid must hold the references' features ({len(references)}), got {len(grid)}")
        self.reports = list(references.captions)
        self.features = pooled_features(grid) if grid.ndim == 4 else np.asarray(grid, dtype=np.float32)
        self.index = NearestNeighbors(n_neighbors=1, metric="cosine").fit(self.features)

    def neighbours(self, images: torch.Tensor, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, indices)`` [N, k] of the nearest references, nearest first."""
        check_positive_int("k", k)
        return self.index.kneighbors(pooled_features(self._grid(images)), n_neighbors=k)

    def generate(self, images: torch.Tensor) -> list[str]:
        _, idx = self.neighbours(images)
        return [self.reports[i] for i in idx[:, 0]]


#: Report templates per phantom. ``finding`` is a sentence whose ``{question}`` slots the VQA
#: model's answers fill, each answer first turned into a phrase by ``phrases`` (answers without a
#: phrase go in as they are); ``normal`` = ``(question, answer, sentence)``: when the model gives
#: that answer, the normal report is written instead.
TEMPLATES = {
    "phantom-brain-mri": {
        "normal": ("Is there a tumour?", "no", "Axial T1 post-contrast MRI: normal brain parenchyma, no mass or "
                                               "abnormal enhancement."),
        "finding": "Axial T1 post-contrast MRI: a {How large is the lesion?} enhancing mass in the "
                   "{Where is the lesion?}, in keeping with {What is the diagnosis?}.",
        "phrases": {"What is the diagnosis?": {"pituitary": "a pituitary tumour"},
                    "How large is the lesion?": {"medium": "medium-sized"}},
    },
    "phantom-skin": {
        "finding": "Dermoscopy: {Is the lesion symmetric?} pigmented lesion with {Is the border regular?} borders, "
                   "{How many colours does the lesion show?} and a diameter {Is the diameter larger than 6 mm?}, "
                   "{What is the diagnosis?}.",
        "phrases": {"Is the lesion symmetric?": {"yes": "a symmetric", "no": "an asymmetric"},
                    "Is the border regular?": {"yes": "regular", "no": "irregular"},
                    "How many colours does the lesion show?": {"one": "a uniform brown colour",
                                                               "several": "multiple colours"},
                    "Is the diameter larger than 6 mm?": {"yes": "above 6 mm", "no": "of 6 mm or less"},
                    "What is the diagnosis?": {"benign naevus": "in keeping with a benign naevus",
                                               "melanoma": "suspicious for melanoma"}},
    },
    "phantom-chest-xray": {
        "normal": ("Is there consolidation?", "no", "Frontal chest radiograph: clear lungs, no focal "
                                                    "consolidation; normal heart size."),
        "finding": "Frontal chest radiograph: patchy airspace consolidation in the {Where is the abnormality?}, "
                   "in keeping with {What is the diagnosis?}.",
        "phrases": {},
    },
}


class TemplateReporter(_Wrapper):
    """Template-based report generation: a fixed sentence per dataset whose slots are filled with
    the answers of a :class:`VisualQA` model (:data:`TEMPLATES`)."""

    def __init__(self, vqa: VisualQA, dataset: str):
        super().__init__(vqa.classifier)
        check_choice("dataset", dataset, TEMPLATES)
        self.vqa, self.template = vqa, TEMPLATES[dataset]
        self.slots = re.findall(r"\{([^}]*)\}", self.template["finding"])

    def generate(self, images: torch.Tensor) -> list[str]:
        answers = {q: self.vqa.answer(images, q) for q in self.slots}
        normal = self.template.get("normal")
        if normal is not None:
            answers[normal[0]] = self.vqa.answer(images, normal[0])
        phrases = self.template.get("phrases", {})
        out = []
        for i in range(len(images)):
            if normal is not None and answers[normal[0]][i] == normal[1]:
                out.append(normal[2])
                continue
            text = self.template["finding"]
            for q in self.slots:
                a = answers[q][i]
                text = text.replace("{" + q + "}", phrases.get(q, {}).get(a, a))
            out.append(text)
        return out


def word_attention(caption: Caption, words: Sequence[str] = LESION_WORDS) -> np.ndarray | None:
    """The mean attention map of the caption's words that are in ``words`` (``None`` when it has
    no attention or names none of them)."""
    if caption.maps is None:
        return None
    keep = [i for i, w in enumerate(caption.words) if w in words]
    return caption.maps[keep].mean(0) if keep else None


# ----------------------------------------------------------------------------- dialogues
#: Follow-up wording of a dialogue: after the first turn the lesion is "it".
DIALOGUE_REWRITES = (("the lesion", "it"), ("the abnormality", "it"))


def dialogues(qa: Sequence[Sequence[tuple[str, str]]]) -> list[list[tuple[str, str]]]:
    """Dialogues from per-image question/answer lists: the diagnosis question comes last, and every
    question after the first refers to the finding as "it" (``DIALOGUE_REWRITES``), so a follow-up
    such as "Where is it?" names its subject only through the dialogue's history."""
    out = []
    for pairs in qa:
        pairs = list(pairs)
        order = [p for p in pairs if not p[0].startswith("What is the diagnosis")] + \
                [p for p in pairs if p[0].startswith("What is the diagnosis")]
        turns = []
        for t, (q, a) in enumerate(order):
            if t > 0:
                for old, new in DIALOGUE_REWRITES:
                    q = q.replace(old, new)
            turns.append((q, a))
        out.append(turns)
    return out


# ----------------------------------------------------------------------------- training + cache
@dataclass
class TextTrainingReport:
    """What a text model's training produced: settings, loss per epoch, seconds, cache key."""
    kind: str
    dataset: str
    settings: dict
    vocab: list
    answers: list = field(default_factory=list)
    answer_counts: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    seconds: float = 0.0
    cache_key: str = ""
    classifier_key: str = ""


def _text_settings(profile: str, overrides: dict) -> dict:
    return profile_settings(TEXT_PROFILES, profile, overrides, "text-model setting")


def _key(blob: dict) -> str:
    from .. import __version__

    return hashlib.sha256(json.dumps({**blob, "medxai_lite": __version__}, sort_keys=True, default=str)
                          .encode()).hexdigest()[:16]


_FEATURES: dict = {}


def training_features(classifier: nn.Module, dataset: str, seed: int = 0):
    """``(training split, its grid features [N, D, h, w])`` of the classifier's own training data
    (its ``report.settings``), computed once per classifier in this process: the captioner, the
    VQA and the dialogue model of a dataset, and a retrieval index, read the same features."""
    key = (classifier.report.cache_key, dataset, seed)
    if key not in _FEATURES:
        train = _splits(classifier, dataset, seed)
        _FEATURES[key] = (train, grid_features(classifier, train)[0])
    return _FEATURES[key]


def _splits(classifier: nn.Module, dataset: str, seed: int):
    from ..data import load_dataset

    s = classifier.report.settings
    knobs = {k: s[k] for k in ("difficulty", "shortcut", "class_balance") if k in s}
    train = load_dataset(dataset, "train", image_size=s["image_size"], n=s["n_train"], seed=seed, **knobs)
    if train.captions is None:
        raise ValueError(f"dataset {dataset!r} has no report sentences; the text models train on the phantoms")
    return train


def _batches(n: int, batch_size: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    return perm.split(batch_size)


def _train_loop(module: nn.Module, n: int, batch_size: int, epochs: int, lr: float, seed: int, loss_of, progress: bool,
                clip: float | None = None) -> list:
    """Adam with a cosine schedule over ``epochs`` passes of shuffled batches of ``0..n-1``;
    ``loss_of(indices)`` returns a batch's loss. Returns the mean loss per epoch."""
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    history = []
    for epoch in range(epochs):
        module.train()
        total = 0.0
        for idx in _batches(n, batch_size, seed + epoch):
            loss = loss_of(idx)
            opt.zero_grad()
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(module.parameters(), clip)
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        history.append(total / n)
        if progress:
            print(f"epoch {epoch + 1}/{epochs}: loss {history[-1]:.3f}")
    return history


def train_captioner(grid: torch.Tensor, captions: Sequence[str], *, attention: bool = True, seed: int = 0,
                    vocab: Vocabulary | None = None, progress: bool = False, **settings) -> tuple[CaptionDecoder, Vocabulary, list]:
    """Fit a :class:`CaptionDecoder` on precomputed grid features ``[N, D, h, w]`` and their
    reports; returns ``(decoder, vocab, loss per epoch)``, the decoder trained on and left on
    :func:`medxai_lite.device`. ``settings`` default to the ``cpu`` profile (:data:`TEXT_PROFILES`)."""
    s = {**TEXT_PROFILES["cpu"], **settings}
    if len(grid) != len(captions):
        raise ValueError(f"captions must hold one report per feature grid ({len(grid)}), got {len(captions)}")
    vocab = vocab or Vocabulary.build(captions)
    tokens = _pad([vocab.encode(c) for c in captions])
    set_seed(seed)
    dec = CaptionDecoder(len(vocab), grid.shape[1], attention=attention, embed=s["embed"], hidden=s["hidden"],
                         att_dim=s["att_dim"], dropout=s["dropout"], feature_norm=s["feature_norm"])
    dec.norm.fit(grid)
    dev = device()                       # built and normalised on the CPU: the same weights for a seed anywhere
    dec.to(dev)
    grid, tokens = grid.to(dev), tokens.to(dev)

    def loss_of(idx):
        x, y = grid[idx], tokens[idx]
        y = y[:, :int((y != 0).sum(1).max())]
        logits, alpha = dec(x, y)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[:, 1:].reshape(-1), ignore_index=0)
        if alpha is not None and s["doubly_stochastic"]:
            steps = (y[:, 1:] != 0).float()[..., None]                   # only real words attend
            loss = loss + s["doubly_stochastic"] * ((1 - (alpha * steps).sum(1)) ** 2).mean()
        return loss

    history = _train_loop(dec, len(grid), s["batch_size"], s["epochs"], s["lr"], seed, loss_of, progress, clip=5.0)
    return dec.eval(), vocab, history


def _qa_rows(qa, dialogue: bool):
    """``(image index, question, answer, history)`` rows of single questions or dialogues."""
    rows = []
    if dialogue:
        for i, turns in enumerate(dialogues(qa)):
            history = ""
            for q, a in turns:
                rows.append((i, q, a, history))
                history = f"{history} {q} {a} .".strip()
    else:
        rows = [(i, q, a, "") for i, pairs in enumerate(qa) for q, a in pairs]
    return rows


def train_vqa(grid: torch.Tensor, qa: Sequence[Sequence[tuple[str, str]]], *, history: bool = False, seed: int = 0,
              progress: bool = False, **settings) -> tuple[VQANet, Vocabulary, list, list]:
    """Fit a :class:`VQANet` on grid features and each image's question/answer pairs (as dialogues
    with ``history=True``); returns ``(net, vocab, answers, loss per epoch)``, the net trained on and
    left on :func:`medxai_lite.device`."""
    s = {**TEXT_PROFILES["cpu"], **settings}
    if len(grid) != len(qa):
        raise ValueError(f"qa must hold one list of pairs per feature grid ({len(grid)}), got {len(qa)}")
    rows = _qa_rows(qa, history)
    vocab = Vocabulary.build([r[1] for r in rows] + [r[2] for r in rows])
    answers = sorted({r[2] for r in rows})
    a_index = {a: i for i, a in enumerate(answers)}
    img = torch.tensor([r[0] for r in rows])
    q = _pad([vocab.encode(r[1], bos_eos=False) for r in rows])
    h = _pad([vocab.encode(r[3], bos_eos=False) or [0] for r in rows])
    y = torch.tensor([a_index[r[2]] for r in rows])
    set_seed(seed)
    net = VQANet(len(vocab), len(answers), grid.shape[1], history=history, embed=s["embed"], hidden=s["qa_hidden"],
                 att_dim=s["att_dim"], dropout=s["dropout"], feature_norm=s["feature_norm"])
    net.norm.fit(grid)
    dev = device()
    net.to(dev)
    grid, img, q, h, y = (t.to(dev) for t in (grid, img, q, h, y))

    def loss_of(idx):
        logits, _ = net(grid[img[idx]], q[idx], h[idx] if history else None)
        return F.cross_entropy(logits, y[idx])

    losses = _train_loop(net, len(rows), s["batch_size"] * 2, s["epochs"], s["lr"], seed, loss_of, progress)
    return net.eval(), vocab, answers, losses


def _cached(kind: str, dataset: str, classifier: nn.Module, seed: int, settings: dict, variant: dict, build, fit,
            retrain: bool):
    """Load the text model ``kind`` from the cache, or ``fit()`` it and cache weights + JSON."""
    classifier_key = classifier.report.cache_key
    key = _key({"kind": kind, "dataset": dataset, "classifier": classifier_key, "seed": seed, "settings": settings,
                **variant})
    folder = cache_dir("models")
    stem = f"{dataset}-{kind}-{key}"
    weights, meta = folder / f"{stem}.pt", folder / f"{stem}.json"

    def cached():
        if retrain or not (weights.exists() and meta.exists()):
            return None
        report = TextTrainingReport(**json.loads(meta.read_text()))
        module = build(report)
        module.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return module.to(device()).eval(), report

    found = cached()
    if found is not None:
        return found
    with cache_lock(weights):                 # another process training the same model: wait, then read it
        found = cached()
        if found is not None:
            return found
        return _fit_and_cache(fit, key, classifier_key, weights, meta)


def _fit_and_cache(fit, key, classifier_key, weights, meta):
    t0 = time.perf_counter()
    module, report = fit()
    report.seconds, report.cache_key, report.classifier_key = time.perf_counter() - t0, key, classifier_key
    from .train import save_cached_model

    return save_cached_model(module, report, weights, meta).eval(), report


def get_trained_captioner(dataset: str, *, attention: bool = True, profile: str = "cpu", seed: int = 0,
                          classifier: nn.Module | None = None, retrain: bool = False, progress: bool = False,
                          **overrides) -> Captioner:
    """The report captioner of ``dataset`` on the book's default classifier (or ``classifier``),
    from the cache or trained now on the classifier's training split. ``.report`` holds the
    training record (a :class:`TextTrainingReport`)."""
    from .train import get_trained_model

    if classifier is None:
        classifier = get_trained_model(dataset, profile=profile, seed=seed, progress=progress)
    s = _text_settings(profile, overrides)
    feat_dim = None

    def build(report):
        return CaptionDecoder(len(report.vocab), report.settings["feat_dim"], attention=attention,
                              embed=s["embed"], hidden=s["hidden"], att_dim=s["att_dim"], dropout=s["dropout"],
                              feature_norm=s["feature_norm"])

    def fit():
        nonlocal feat_dim
        train, grid = training_features(classifier, dataset, seed)
        feat_dim = grid.shape[1]
        dec, vocab, hist = train_captioner(grid, train.captions, attention=attention, seed=seed, progress=progress, **s)
        return dec, TextTrainingReport(kind="captioner", dataset=dataset, settings={**s, "feat_dim": feat_dim},
                                       vocab=vocab.words, history=hist)

    dec, report = _cached("captioner-att" if attention else "captioner", dataset, classifier, seed, s,
                          {"attention": attention}, build, fit, retrain)
    model = Captioner(classifier, dec, Vocabulary(report.vocab), s["max_len"]).eval()
    model.report = report
    return model


def get_report_retriever(dataset: str, *, profile: str = "cpu", seed: int = 0, classifier: nn.Module | None = None,
                         rebuild: bool = False) -> ReportRetriever:
    """A :class:`ReportRetriever` over the default classifier's training split. Its index (the
    pooled features of the training images, ~2 MB) is cached beside the classifier, so a later
    call runs no network over the training set."""
    from ..data.base import ArrayDataset
    from .train import get_trained_model

    if classifier is None:
        classifier = get_trained_model(dataset, profile=profile, seed=seed, progress=False)
    key = _key({"kind": "retrieval-index", "dataset": dataset, "classifier": classifier.report.cache_key,
                "seed": seed})
    path = cache_dir("models") / f"{dataset}-retrieval-{key}.npz"
    if path.exists() and not rebuild:
        with np.load(path, allow_pickle=False) as z:
            features, reports = z["features"], [str(r) for r in z["reports"]]
    else:
        train, grid = training_features(classifier, dataset, seed)
        features, reports = pooled_features(grid), list(train.captions)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, features=features, reports=np.array(reports))
    refs = ArrayDataset(name=dataset, split="train", images=np.zeros((len(reports), 1, 1, 3), np.uint8),
                        labels=np.zeros(len(reports), np.int64), classes=("?",), modality="", captions=reports)
    return ReportRetriever(classifier, refs, grid=torch.from_numpy(features))


def get_trained_vqa(dataset: str, *, history: bool = False, profile: str = "cpu", seed: int = 0,
                    classifier: nn.Module | None = None, retrain: bool = False, progress: bool = False,
                    **overrides) -> VisualQA:
    """The VQA model of ``dataset`` (with ``history=True`` the dialogue model, trained on the
    dialogues of :func:`dialogues`), on the book's default classifier, cached like the captioner.
    ``model.report.answer_counts`` holds ``{question: {answer: count}}`` of its training split,
    for the baselines that ignore the image."""
    from .train import get_trained_model

    if classifier is None:
        classifier = get_trained_model(dataset, profile=profile, seed=seed, progress=progress)
    s = _text_settings(profile, overrides)

    def build(report):
        return VQANet(len(report.vocab), len(report.answers), report.settings["feat_dim"], history=history,
                      embed=s["embed"], hidden=s["qa_hidden"], att_dim=s["att_dim"], dropout=s["dropout"],
                      feature_norm=s["feature_norm"])

    def fit():
        train, grid = training_features(classifier, dataset, seed)
        net, vocab, answers, hist = train_vqa(grid, train.qa, history=history, seed=seed, progress=progress, **s)
        counts: dict = {}
        for pairs in train.qa:
            for q, a in pairs:
                counts.setdefault(q, {}).setdefault(a, 0)
                counts[q][a] += 1
        return net, TextTrainingReport(kind="vqa", dataset=dataset, settings={**s, "feat_dim": grid.shape[1]},
                                       vocab=vocab.words, answers=answers, answer_counts=counts, history=hist)

    net, report = _cached("dialog" if history else "vqa", dataset, classifier, seed, s,
                          {"history": history, "format": 2}, build, fit, retrain)
    model = VisualQA(classifier, net, Vocabulary(report.vocab), report.answers).eval()
    model.report = report
    return model
