"""Open-source XAI frameworks: the survey's Table 11 as data, and the same method through several libraries.

- :func:`frameworks_table` and :func:`table11_methods`: Table 11 of Dagnaw et al. 2025 (Section 4),
  with whether each framework is installed here, its version, and which registry methods of
  :mod:`medxai_lite.explain` call it.
- :func:`compare_libraries`: Grad-CAM through pytorch-grad-cam, captum and torchcam, or
  Integrated Gradients through captum and zennit, on the same model, layer, images and targets,
  brought to one post-processing and timed; :func:`agreement`: the pairwise rank correlation and
  largest difference of their maps.

>>> from medxai_lite.frameworks import frameworks_table, compare_libraries, agreement
"""
from .compare import (CAPTUM_RULES, LIBRARIES, LIBRARY_DEFAULTS, LibraryComparison, agreement, compare_libraries,
                      rule_weights, summarise_agreement)
from .table import (TABLE11_FRAMEWORKS, TABLE11_METHODS, frameworks_table, package_licence, package_version,
                    table11_methods)

__all__ = [
    "TABLE11_FRAMEWORKS",
    "TABLE11_METHODS",
    "frameworks_table",
    "table11_methods",
    "package_version",
    "package_licence",
    "LIBRARIES",
    "CAPTUM_RULES",
    "LIBRARY_DEFAULTS",
    "LibraryComparison",
    "compare_libraries",
    "agreement",
    "summarise_agreement",
    "rule_weights",
]
