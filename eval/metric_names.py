"""The five headline metrics, named once: results, bootstrap, ranking and tables all use :class:`Metric`."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Metric", "METRICS", "PIXEL_METRICS", "display_name"]


class Metric(StrEnum):
    """A headline metric; its value is the key used in results.json, results.csv and ``--rank-by``."""

    IMAGE_AUROC = "image_auroc"
    IMAGE_AP = "image_ap"
    PIXEL_AUROC = "pixel_auroc"
    PIXEL_AP = "pixel_ap"
    AUPRO = "aupro"

    @property
    def label(self) -> str:
        """The short name used in tables (``P-AUROC``, ``AUPRO`` ...)."""
        return _LABELS[self]


_LABELS = {Metric.IMAGE_AUROC: "I-AUROC", Metric.IMAGE_AP: "I-AP", Metric.PIXEL_AUROC: "P-AUROC",
           Metric.PIXEL_AP: "P-AP", Metric.AUPRO: "AUPRO"}

#: Every metric, in the order results.json lists them.
METRICS: tuple[Metric, ...] = tuple(Metric)
#: The metrics computed over pixels (binned by the bootstrap above its level limit).
PIXEL_METRICS: tuple[Metric, ...] = (Metric.PIXEL_AUROC, Metric.PIXEL_AP, Metric.AUPRO)


def display_name(metric: Metric | str, protocol_aupro: str = "mvtec") -> str:
    """The table name of ``metric``; AUPRO under the ``paper`` protocol is the authors' per-image PRO."""
    metric = Metric(metric)
    if metric is Metric.AUPRO and protocol_aupro == "paper_per_image":
        return "P-PRO (authors')"
    return metric.label
