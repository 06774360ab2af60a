"""Explanations: one registry and one verb, ``explain(method, model, images, targets=None, **options)``.

Families live in their own modules (``cam``, ``gradient``, ...) and fill the registry with
``@register`` when imported here; adding a family is one new module plus one import line below.
Everything public is re-exported flat:

>>> from medxai_lite.explain import explain, list_methods, compatibility_matrix
>>> list_methods("Gradient-based")[:2]
['saliency', 'deconvnet']

This subpackage is also callable: ``medxai_lite.explain(...)`` (the top-level package exposes
the subpackage under the verb's name) is ``medxai_lite.explain.explain(...)``, so that
``import medxai_lite.explain as E`` gives the subpackage with ``E.register``, ``E.METHODS``
... and ``mx.explain("gradcam", model, images)`` still reads as a verb.
"""
import sys as _sys
import types as _types

from . import cam as _cam  # noqa: F401  (registers the CAM family)
from . import gradient as _gradient  # noqa: F401  (registers the gradient family)
from . import perturbation as _perturbation  # noqa: F401  (registers the perturbation family)
from . import attention as _attention  # noqa: F401  (registers the attention family)
from . import text as _text  # noqa: F401  (registers the text-based family)
from . import concept as _concept  # noqa: F401  (registers the concept-based family)
from . import examples as _examples  # noqa: F401  (registers the example-based family)
from .registry import (
    METHODS,
    OUTPUT_KINDS,
    PRESETS,
    SCALES,
    SIGNS,
    AdapterResult,
    Call,
    Explanation,
    MethodInfo,
    OutputKind,
    UnsupportedArchitectureError,
    compatibility_matrix,
    explain,
    hook_guard,
    infer_arch,
    list_methods,
    methods_table,
    register,
    to_unit,
    unregister,
)

__all__ = [
    "explain",
    "Explanation",
    "AdapterResult",
    "Call",
    "METHODS",
    "MethodInfo",
    "OUTPUT_KINDS",
    "OutputKind",
    "PRESETS",
    "SIGNS",
    "SCALES",
    "list_methods",
    "methods_table",
    "register",
    "unregister",
    "compatibility_matrix",
    "infer_arch",
    "hook_guard",
    "to_unit",
    "UnsupportedArchitectureError",
]


class _CallableModule(_types.ModuleType):
    """The subpackage's module type: calling it calls :func:`explain`."""

    def __call__(self, *args, **kwargs):
        return explain(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
