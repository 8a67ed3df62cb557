"""The archives ``threecad download`` knows about, listed as data.

The 3CAD authors publish Google Drive ids only: no archive name, size or checksum, so
``sha256`` and ``size`` are ``None`` here until someone pins them (``--sha256`` on the
command line does so for one run). Sources: ``shared/3cad_facts.md`` (section Downloads).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError

__all__ = ["Resource", "DATA", "RESOURCES", "get_resource", "resource_for"]


@dataclass(frozen=True)
class Resource:
    """One downloadable archive.

    Attributes
    ----------
    name : str
        Short identifier, recorded in ``.threecad-download.json``.
    filename : str
        Name the downloaded archive is saved under (the format is sniffed from the content,
        not from this name).
    drive_id : str or None
        Google Drive file id.
    url : str or None
        Direct HTTP(S) URL; tried before ``drive_id`` when both are set.
    sha256 : str or None
        Expected sha256 of the archive; ``None`` when nobody publishes one.
    size : int or None
        Expected archive size in bytes, when known.
    extracts_to : str or None
        The single top-level folder the archive holds (its content is moved up into the
        destination); ``None`` when not known.
    description : str
        One line for humans.
    """

    name: str
    filename: str
    drive_id: str | None = None
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    extracts_to: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not (self.drive_id or self.url):
            raise ValueError(f"resource {self.name!r} needs a drive_id or a url")


DATA: tuple[Resource, ...] = (
    Resource(
        name="3cad-english",
        filename="3CAD-english.archive",
        drive_id="1BIX0H8TZp0wmrAnXPw8_aCAIX1j1Fzwz",
        description="3CAD, current release (English defect folder names)",
    ),
    Resource(
        name="3cad-pinyin",
        filename="3CAD-pinyin.archive",
        drive_id="1zhCHL6oH8_IuEkU72F-9bltroiBHmmcH",
        description="3CAD, older release (Pinyin defect folder names)",
    ),
    Resource(
        name="dtd",
        filename="dtd-r1.0.1.tar.gz",
        url="https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz",
        drive_id="171A3_RGjRsLxdqdY4g42Efecj3WzWNjI",
        extracts_to="dtd",
        description="Describable Textures Dataset r1.0.1 (anomaly textures for the CFRG recipe)",
    ),
)

RESOURCES: dict[str, Resource] = {r.name: r for r in DATA}


def get_resource(name: str) -> Resource:
    """The resource called ``name``; ``UsageError`` listing the known names otherwise."""
    try:
        return RESOURCES[name]
    except KeyError:
        raise UsageError(f"unknown resource {name!r}; known: {', '.join(RESOURCES)}") from None


def resource_for(release: str = "english", dtd: bool = False) -> Resource:
    """The resource the CLI options ``--release`` and ``--dtd`` select."""
    return get_resource("dtd" if dtd else f"3cad-{release}")
