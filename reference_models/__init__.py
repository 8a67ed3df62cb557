"""Reference anomaly-detection models for 3CAD.

* :mod:`threecad.reference_models.cfrg`: CFRG, the 3CAD paper's method (needs torch and torchvision);
* :mod:`threecad.reference_models.patchknn`: a training-free nearest-neighbour baseline (numpy, OpenCV,
  scikit-learn only), used by ``threecad demo``.

Both write submissions in the format ``threecad eval`` scores (:mod:`threecad.reference_models.submission`).
"""
