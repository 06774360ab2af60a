"""Concept-based explanations in the registry (the survey's Section 2.2.2); output kind ``"concepts"``.

- ``tcav``: TCAV (Kim et al. 2018) through ``captum.concept``. TCAV itself is global (one score per
  concept and class); what it aggregates is, per image, the **directional derivative** of the
  explained logit along each concept's activation vector, ``S_C(x) = grad h_k(f_l(x)) . v_C / |v_C|``,
  and that is the per-image score here (averaged over the CAVs trained against ``n_random`` random
  sets). The concept examples come from a phantom's concept labels (``dataset``, default the
  model's own training set; ``source="intervention"``: the same pool's images re-rendered with the
  concept switched on, so that they differ from random images in the concept only, not in the
  class mix); the layer defaults to the zoo architecture's second-to-last stage
  (:func:`~medxai_lite.concepts.resolve_layer`: at the last one every TCAV score is 0 or 1);
  ``extras["tcav"]`` holds the full
  :class:`~medxai_lite.concepts.TCAVResult` of the explained images (each for its own target
  class), with the significance test, ``extras["pool"]`` the dataset the concept examples were
  drawn from and ``extras["random_pool"]`` the one the random sets were drawn from (e.g. how many
  of its images carry the artefact). The two are separate draws of the same distribution
  (``seed=0`` and ``seed=1``): drawn from one pool, a random set would share images with the
  concept's examples, and the CAV's classifier would be trained on the same image under both
  labels (measured on the shortcut model with examples chosen by label: the CAVs' held-out
  accuracy was 0.52-0.70 from one shared pool and 0.74-0.94 from two).
- ``cbm_concepts``: the concepts a concept bottleneck predicts for each image (probabilities; the
  standardised projections for a post-hoc CBM); ``extras["uncertainty"]`` for a probabilistic CBM.
- ``cbm_contributions``: each concept's share ``W_y[k, j] * c_j`` of the explained class's logit
  (the linear head makes the logit their sum plus ``extras["rest"]``: the bias, and the residual of
  a hybrid post-hoc CBM).

The two bottleneck methods take the wrappers of :mod:`medxai_lite.concepts` as ``model``
(:func:`~medxai_lite.concepts.get_trained_cbm` and the like), whose forward pass is the bottleneck's
prediction; ``tcav`` takes any classifier.
"""
from __future__ import annotations

from .registry import AdapterResult, register

_CONCEPT = dict(family="Concept-based", output="concepts")
_CBM = dict(library="torch", needs_gradients=False, cost="fast",
            paper="Koh et al. 2020, Concept Bottleneck Models (ICML); Yuksekgonul et al. 2023, Post-hoc Concept "
                  "Bottleneck Models (ICLR); Kim et al. 2023, Probabilistic Concept Bottleneck Models (ICML)",
            requires={"concept_bottleneck": "a concept bottleneck method needs a model that predicts named concepts"})


def _model_dataset(model) -> str | None:
    for m in (model, getattr(model, "classifier", None)):
        report = getattr(m, "report", None)
        if report is not None and isinstance(getattr(report, "dataset", None), str):
            return report.dataset
    return None


@register("tcav", title="TCAV (concept activation vectors)", library="captum", needs_gradients=True, cost="medium",
          paper="Kim et al. 2018, Interpretability Beyond Feature Attribution: Quantitative Testing with Concept "
                "Activation Vectors (TCAV) (ICML)",
          presets={"quick": {"dataset": "phantom-skin", "n_examples": 6, "n_random": 2, "n_pool": 24},
                   # the concept chapter's budget: two models x two example sources in under a minute of CPU.
                   # Random CAVs there score 0 or 1 (aligned gradients); against such a null a concept at
                   # 1.0 passes a Holm-corrected t-test over 4-5 concepts only from about 15 random runs on
                   "book": {"n_examples": 15, "n_random": 15, "n_pool": 120}}, **_CONCEPT)
def _tcav(call, layer=None, dataset: str | None = None, concepts=None, n_examples: int = 30, n_random: int = 5,
          n_pool: int = 200, source: str = "labels"):
    """Per image, the derivative of the explained logit along each concept's CAV (what TCAV counts).

    ``source="labels"``: a concept's examples are pool images whose label says it is present (Kim et
    al.); ``"intervention"``: pool images re-rendered with the concept switched on (phantoms only;
    default concepts: all that :data:`medxai_lite.data.INTERVENTIONS` can force)."""
    import numpy as np
    import torch

    from .._utils import check_choice, check_positive_int
    from ..concepts import SOURCES, concept_names, concept_sets, resolve_layer, tcav
    from ..data import INTERVENTIONS, PHANTOMS, load_dataset

    dataset = dataset or _model_dataset(call.model)
    if dataset not in PHANTOMS:
        raise ValueError(f"dataset must name the phantom whose concept labels give the examples ({', '.join(PHANTOMS)}); "
                         f"got {dataset!r} (a model from get_trained_model names its own)")
    n_pool = check_positive_int("n_pool", n_pool, minimum=4)
    size = call.size[-1]
    if call.size[0] != size:
        raise ValueError(f"images must be square to draw concept examples at their size; got {call.size}")
    report = getattr(call.model, "report", None)
    knobs = {k: v for k, v in (getattr(report, "settings", None) or {}).items() if k in ("difficulty", "shortcut")}
    pool = load_dataset(dataset, "train", image_size=size, n=n_pool, seed=0, **knobs)
    # the random sets come from another draw of the same distribution, never from the examples' images
    random_pool = load_dataset(dataset, "train", image_size=size, n=n_pool, seed=1, **knobs)
    seed = int(torch.randint(0, 2**31 - 1, (1,)))       # explain's seed, through its forked RNG
    check_choice("source", source, SOURCES)
    if concepts is None and source == "intervention":
        names = list(INTERVENTIONS[dataset])
    elif concepts is None:
        names = [c for c in concept_names(pool) if c != "artefact" or bool(np.asarray(pool.meta["artefact"]).any())]
        values = {c: (pool.meta["artefact"] if c == "artefact" else pool.concepts[:, pool.concept_names.index(c)])
                  for c in names}
        names = [c for c in names if np.sum(np.asarray(values[c]) > 0.5) >= 2]
    else:
        names = [concepts] if isinstance(concepts, str) else list(concepts)
    sets = concept_sets(pool, names, n=check_positive_int("n_examples", n_examples, minimum=2), seed=seed,
                        source=source)
    targets = call.require_targets()
    module = resolve_layer(call.model, None)[1] if layer is None and call.arch is not None else call.layers(layer)[0]
    # the random sets index one tensor of the pool instead of building each from the dataset (same images)
    random_images = random_pool.batch()["image"]
    result = tcav(call.model, module, targets.cpu().numpy(), sets, call.images, random_images,
                  n_random=n_random, n_examples=n_examples, seed=seed)
    return AdapterResult(value={"names": list(result.concepts), "scores": result.derivatives},
                         extras={"tcav": result, "pool": pool, "random_pool": random_pool})


def _need_cbm(call, method: str):
    from ..concepts import ConceptBottleneckModel

    if not isinstance(call.model, ConceptBottleneckModel):
        raise ValueError(f"model for {method!r} must be a medxai_lite.concepts.ConceptBottleneckModel (see "
                         f"get_trained_cbm), got {type(call.model).__name__}")
    return call.model


@register("cbm_concepts", title="Concept bottleneck: predicted concepts", **_CBM, **_CONCEPT)
def _cbm_concepts(call):
    """The concepts a concept bottleneck model predicts for each image (its explanation in words)."""
    from ..concepts import ProbabilisticBottleneck

    model = _need_cbm(call, "cbm_concepts")
    features = model.features(call.images)
    values = model.bottleneck.concept_values(features)
    extras = {"value_kind": model.bottleneck.value_kind}
    if isinstance(model.bottleneck, ProbabilisticBottleneck):
        extras["uncertainty"] = {k: v.cpu().numpy() for k, v in model.bottleneck.uncertainty(features).items()}
    return AdapterResult(value={"names": list(model.concept_names), "scores": values.cpu().numpy()}, extras=extras)


@register("cbm_contributions", title="Concept bottleneck: concept contributions", **_CBM, **_CONCEPT)
def _cbm_contributions(call):
    """Each concept's share of the explained class's logit through the bottleneck's linear head."""
    model = _need_cbm(call, "cbm_contributions")
    targets = call.require_targets()
    shares, rest = model.contributions(call.images, targets)
    return AdapterResult(value={"names": list(model.concept_names), "scores": shares.cpu().numpy()},
                         extras={"rest": rest.cpu().numpy()})
