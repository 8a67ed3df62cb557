"""The threecad scoring harness (metric engine, submission loading, protocols, reports).

Import it as ``from threecad.eval import ...`` (never a bare ``import eval``, which would hide
the builtin ``eval`` in the importing module).
"""
