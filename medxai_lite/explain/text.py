"""Text-based explanations: methods that answer in words (the survey's Section 2.2.3).

Each method takes one of the text models of :mod:`medxai_lite.models.text` as ``model``: a
wrapper whose forward pass is its classifier's (so ``targets`` default to the predicted class
as for every method) and which writes text. The output kind is ``"text"``: one string per
image. Word-level attention maps, retrieved neighbours and answers' maps go into ``extras``.

- ``report_retrieval``: the report of the nearest training image in the classifier's feature
  space (a :class:`~medxai_lite.models.text.ReportRetriever`);
- ``report_template``: a fixed sentence whose slots a VQA model fills
  (:class:`~medxai_lite.models.text.TemplateReporter`);
- ``captioner``: a report written word by word by a GRU decoder, with the attention map of every
  word when it attends (:class:`~medxai_lite.models.text.Captioner`; Xu et al. 2015);
- ``vqa``: the answer to ``question`` (:class:`~medxai_lite.models.text.VisualQA`; Yang et al.
  2016), with its attention map.
"""
from __future__ import annotations

from .registry import AdapterResult, register

_TEXT = dict(family="Text-based", output="text", library="torch", needs_gradients=False, cost="fast",
             requires={"language_model": "a text method needs a model that writes text"})


def _need(call, cls_name: str, method: str):
    from ..models import text

    cls = getattr(text, cls_name)
    if not isinstance(call.model, cls):
        raise ValueError(f"model for {method!r} must be a medxai_lite.models.text.{cls_name} (see "
                         f"{'get_trained_captioner' if cls_name == 'Captioner' else cls_name}), "
                         f"got {type(call.model).__name__}")
    return call.model


@register("report_retrieval", title="Retrieval-based report", paper="nearest-neighbour report retrieval", **_TEXT)
def _retrieval(call, k: int = 1):
    """The nearest training image's report; ``extras``: ``indices`` and ``distances`` [N, k]."""
    model = _need(call, "ReportRetriever", "report_retrieval")
    distances, indices = model.neighbours(call.images, k)
    return AdapterResult(value=[model.reports[i] for i in indices[:, 0]],
                         extras={"indices": indices, "distances": distances})


@register("report_template", title="Template-based report", paper="slot-filling report templates", **_TEXT)
def _template(call):
    """A per-dataset template filled with a VQA model's answers."""
    model = _need(call, "TemplateReporter", "report_template")
    return AdapterResult(value=model.generate(call.images))


@register("captioner", title="Report captioner (Show, Attend and Tell)", paper="Xu et al. 2015", **_TEXT)
def _captioner(call):
    """Greedy report; ``extras['captions']``: per image the words and, with attention, the map
    [T, H, W] of each word."""
    model = _need(call, "Captioner", "captioner")
    captions = model.describe(call.images)
    return AdapterResult(value=[c.text for c in captions], extras={"captions": captions})


@register("vqa", title="Visual question answering", paper="Yang et al. 2016", **_TEXT)
def _vqa(call, question: str = "What is the diagnosis?"):
    """The answer to ``question`` for each image; ``extras['maps']`` [N, H, W]: the attention."""
    model = _need(call, "VisualQA", "vqa")
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be a non-empty string, got {question!r}")
    answers, maps = model.answer(call.images, question, with_maps=True)
    return AdapterResult(value=answers, extras={"maps": maps})
