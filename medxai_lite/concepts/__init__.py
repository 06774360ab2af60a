"""Concept-based explanations (the survey's Section 2.2.2): what a model knows in terms a clinician uses.

The phantoms know every image's concepts (dermoscopy ABCD attributes, glioma ring enhancement,
pneumonia consolidation...) and can re-render an image with one concept switched
(:func:`medxai_lite.data.intervene`), so every method here can be checked against the truth:

- :mod:`.sets`: example images of a concept, from its labels or from true interventions, and
  random sets (:func:`concept_sets`, :func:`random_sets`, :func:`intervention_arms`);
- :mod:`.tcav`: TCAV through ``captum.concept`` with Kim et al.'s significance test (:func:`tcav`),
  and how aligned the layer gradients are (:func:`gradient_alignment`, why TCAV scores saturate);
- :mod:`.effects`: the causal concept effect with true interventions
  (:func:`causal_concept_effect`) and the rank agreement of an explanation with it
  (:func:`rank_agreement`);
- :mod:`.bottleneck`: concept bottleneck models on a frozen backbone (independent, sequential and
  joint training; test-time intervention), a probabilistic CBM and the post-hoc CBM, cached
  (:func:`get_trained_cbm`, :func:`get_probabilistic_cbm`, :func:`get_posthoc_cbm`), the errors
  one corrected concept fixes (:func:`correctable_errors`) and error rate by uncertainty
  (:func:`error_by_uncertainty`);
- :mod:`.discovery`: ACE (:func:`ace`) and ConceptSHAP (:func:`completeness`, :func:`concept_shap`),
  concept vectors from labelled features (:func:`probe_vectors`) and how much of a discovered
  concept lies in a mask (:func:`segment_overlap`).

The registry's concept-based methods (``tcav``, ``cbm_concepts``, ``cbm_contributions``) are in
:mod:`medxai_lite.explain.concept`.
"""
from .bottleneck import (CBM_MODES, CBM_PROFILES, ConceptBottleneck, ConceptBottleneckModel, ConceptModelReport,
                         PosthocBottleneck, ProbabilisticBottleneck, backbone_features, concept_data, fit_cbm,
                         fit_posthoc_cbm, fit_probabilistic_cbm, get_posthoc_cbm, get_probabilistic_cbm,
                         get_trained_cbm, intervention_curve, correctable_errors, error_by_uncertainty)
from .discovery import (ACEConcept, ACEResult, ConceptSHAPResult, ace, completeness, concept_projections,
                        concept_shap, probe_vectors, segment_overlap, segment_patches)
from .effects import (ConceptEffect, RankAgreement, causal_concept_effect, causal_concept_effects, predict_log_odds, predict_proba,
                      rank_agreement)
from .sets import (LESION_CONCEPT, SOURCES, Arms, ConceptSet, concept_names, concept_sets, intervention_arms,
                   random_sets)
from .tcav import CAVClassifier, TCAVResult, gradient_alignment, resolve_layer, tcav

__all__ = [
    "ConceptSet", "Arms", "concept_sets", "random_sets", "intervention_arms", "concept_names", "LESION_CONCEPT",
    "SOURCES",
    "CAVClassifier", "TCAVResult", "tcav", "resolve_layer",
    "ConceptEffect", "causal_concept_effect", "causal_concept_effects", "predict_log_odds", "predict_proba", "RankAgreement",
    "rank_agreement",
    "CBM_MODES", "CBM_PROFILES", "ConceptBottleneck", "ProbabilisticBottleneck", "PosthocBottleneck",
    "ConceptBottleneckModel", "ConceptModelReport", "backbone_features", "fit_cbm", "fit_probabilistic_cbm",
    "fit_posthoc_cbm", "get_trained_cbm", "get_probabilistic_cbm", "get_posthoc_cbm", "concept_data",
    "intervention_curve", "correctable_errors", "error_by_uncertainty",
    "ACEConcept", "ACEResult", "ace", "segment_patches", "ConceptSHAPResult", "completeness", "concept_shap",
    "concept_projections", "probe_vectors", "segment_overlap", "gradient_alignment",
]
