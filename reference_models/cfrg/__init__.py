"""CFRG, the 3CAD paper's method (reference implementation, written from its description).

A frozen ImageNet wide_resnet50_2 teacher; a heterogeneous student (EfficientNet-B0 from
scratch with adapters); a recovery branch (multi-scale fusion bottleneck and de-ResNet decoder)
that restores the teacher's features of the clean image from those of an image with synthetic
anomalies; a segmentation head fed by the teacher-student and teacher-recovery discrepancies.
Modules: ``config``, ``model``, ``anomalies``, ``data``, ``losses``, ``maps``, ``teacher``,
``checkpoint``, ``train``, ``predict``, ``device``. Needs the ``model`` extra (torch, torchvision).
"""

__all__: list[str] = []
