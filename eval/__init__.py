"""The threecad scoring harness (metric engine, submission loading, protocols, reports).

Import it as ``from threecad.eval import ...`` (never a bare ``import eval``, which would hide
the builtin ``eval`` in the importing module).
"""

__all__ = ["Evaluator", "Results", "Metric"]


def __getattr__(name: str):
    # the scoring API, imported when first used (``threecad.eval`` itself stays light)
    if name in ("Evaluator", "Results"):
        from . import api

        return getattr(api, name)
    if name == "Metric":
        from .metric_names import Metric

        return Metric
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
