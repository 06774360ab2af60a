"""Explanations: one registry and one verb, ``explain(method, model, images, targets=None, **options)``.

Families live in their own modules (``cam``, ``gradient``, ...) and fill the registry with
``@register`` when imported here. Everything public is re-exported flat:

>>> from medxai_lite.explain import explain, list_methods, compatibility_matrix
>>> list_methods("Gradient-based")[:2]
['saliency', 'deconvnet']
"""
from . import cam as _cam  # noqa: F401  (registers the CAM family)
from . import gradient as _gradient  # noqa: F401  (registers the gradient family)
from .registry import (
    METHODS,
    Explanation,
    MethodInfo,
    UnsupportedArchitectureError,
    compatibility_matrix,
    explain,
    hook_guard,
    infer_arch,
    list_methods,
    methods_table,
    register,
)

__all__ = [
    "explain",
    "Explanation",
    "METHODS",
    "MethodInfo",
    "list_methods",
    "methods_table",
    "register",
    "compatibility_matrix",
    "infer_arch",
    "hook_guard",
    "UnsupportedArchitectureError",
]
