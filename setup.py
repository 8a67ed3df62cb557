"""Package layout only (metadata lives in pyproject.toml).

The repository's three top-level folders install under one import namespace:

=====================  ===========================
folder                 import name
=====================  ===========================
``threecad/``          ``threecad``
``eval/``              ``threecad.eval``
``reference_models/``  ``threecad.reference_models``
=====================  ===========================
"""
from setuptools import find_packages, setup

FOLDERS = {"threecad": "threecad", "threecad.eval": "eval",
           "threecad.reference_models": "reference_models"}


def _packages() -> list[str]:
    names = []
    for name, folder in FOLDERS.items():
        names.append(name)
        names += [f"{name}.{sub}" for sub in find_packages(folder)]
    return sorted(set(names))


setup(packages=_packages(), package_dir=FOLDERS)
