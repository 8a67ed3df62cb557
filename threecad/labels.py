"""Defect-type names: the English release's names and the older Pinyin ones.

3CAD exists in two releases: an older one whose defect folders carry Pinyin names
(``aotu``, ``neiqiaopian``, ...) and one with English names (since 2025-04-22). The
English list is not published anywhere we could read (``docs/dataset.md``), so
this table is the project's own reading of common Chinese inspection terms, written
as Pinyin. Users extend or override it with a file (:meth:`LabelMap.from_file`).

A folder name is resolved as follows (case and separators ignored):

1. a Pinyin term of the table (built-in or user file) -> its English name;
2. an English name the table knows -> kept exactly as spelled on disk;
3. anything else -> kept unchanged and reported as *unknown*, so the caller can warn.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

__all__ = [
    "PINYIN_TO_ENGLISH",
    "LabelMap",
    "LabelKind",
    "ResolvedLabel",
    "LabelMapError",
]

# Pinyin term -> English defect-type name. The first two are seen in the Pinyin release
# (``aotu`` in ACC, ``neiqiaopian`` in IS; docs/dataset.md); ``bump`` is seen in
# the English release (ANI). The rest are common Chinese industrial-inspection terms in
# the project's own translation. Where several terms share one English name, the first
# one listed is the one used when writing Pinyin names (``threecad sample --names pinyin``).
PINYIN_TO_ENGLISH: dict[str, str] = {
    "aotu": "bump",                 # 凹凸
    "neiqiaopian": "inner_warped_sheet",  # 内翘片
    "waiqiaopian": "outer_warped_sheet",  # 外翘片
    "qiaopian": "warped_sheet",     # 翘片
    "huahen": "scratch",            # 划痕
    "huashang": "scratch",          # 划伤
    "guashang": "scrape",           # 刮伤
    "cashang": "abrasion",          # 擦伤
    "pengshang": "dent",            # 碰伤
    "aoxian": "dent",               # 凹陷
    "yashang": "press_mark",        # 压伤
    "yahen": "indentation",         # 压痕
    "aokeng": "pit",                # 凹坑
    "tuqi": "protrusion",           # 凸起
    "tubao": "bump",                # 凸包
    "zangwu": "stain",              # 脏污
    "wuzi": "stain",                # 污渍
    "youwu": "oil_stain",           # 油污
    "yiwu": "foreign_matter",       # 异物
    "liewen": "crack",              # 裂纹
    "kailie": "crack",              # 开裂
    "bengque": "chipping",          # 崩缺
    "bengbian": "edge_chipping",    # 崩边
    "queliao": "missing_material",  # 缺料
    "quekuai": "missing_piece",     # 缺块
    "maoci": "burr",                # 毛刺
    "bianxing": "deformation",      # 变形
    "secha": "color_difference",    # 色差
    "yise": "discoloration",        # 异色
    "xiushi": "corrosion",          # 锈蚀
    "shengxiu": "rust",             # 生锈
    "qipao": "bubble",              # 气泡
    "zhenkong": "pinhole",          # 针孔
    "shakong": "sand_hole",         # 砂孔
    "heidian": "black_spot",        # 黑点
    "baidian": "white_spot",        # 白点
    "diaoqi": "paint_loss",         # 掉漆
    "yinhen": "imprint",            # 印痕
    "shuiyin": "water_mark",        # 水印
    "zhiwen": "fingerprint",        # 指纹
    "duanxian": "broken_wire",      # 断线
    "sanxian": "loose_wire",        # 散线
}


def _key(name: str) -> str:
    """Comparison key: lower case, separators dropped."""
    return re.sub(r"[\s_\-.]+", "", name.strip().lower())


class LabelMapError(ValueError):
    """A label-map file that cannot be read; the message names the file and the problem."""


class LabelKind(str, Enum):
    """How a folder name was resolved."""

    ENGLISH = "english"
    PINYIN = "pinyin"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ResolvedLabel:
    """A folder name and the English defect-type name it stands for."""

    folder: str
    english: str
    kind: LabelKind


@dataclass
class LabelMap:
    """Maps defect folder names (English or Pinyin) to English defect-type names.

    Parameters
    ----------
    pinyin_to_english : dict, optional
        Entries that extend or override the built-in table.
    """

    pinyin_to_english: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        merged = dict(PINYIN_TO_ENGLISH)
        merged.update(self.pinyin_to_english)
        self.pinyin_to_english = merged
        self._pinyin = {_key(p): e for p, e in merged.items()}
        self._english = {_key(e) for e in merged.values()}
        # Preferred Pinyin spelling per English name: the first table entry.
        self._to_pinyin: dict[str, str] = {}
        for p, e in merged.items():
            self._to_pinyin.setdefault(_key(e), p)

    @classmethod
    def from_file(cls, path: str | Path) -> "LabelMap":
        """Built-in table extended by a user file.

        The file is either CSV with a header ``pinyin,english`` (one mapping per row) or a
        JSON object ``{"pinyin": "english", ...}``, chosen by the extension (``.json``
        means JSON, anything else CSV). A row whose two names are equal declares an
        English name as known.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise LabelMapError(f"{path}: cannot read label map ({exc.strerror or exc})") from exc
        entries: dict[str, str] = {}
        problems: list[str] = []
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise LabelMapError(f"{path}: not valid JSON ({exc})") from exc
            if not isinstance(data, dict):
                raise LabelMapError(f"{path}: expected a JSON object {{\"pinyin\": \"english\"}}")
            for k, v in data.items():
                if not isinstance(v, str) or not v.strip() or not str(k).strip():
                    problems.append(f"entry {k!r}: expected a non-empty string name")
                else:
                    entries[str(k).strip()] = v.strip()
        else:
            reader = csv.reader(text.splitlines())
            header = next(reader, None)
            if header is None or [h.strip().lower() for h in header[:2]] != ["pinyin", "english"]:
                raise LabelMapError(f"{path}: expected a CSV header 'pinyin,english', got {header!r}")
            for lineno, row in enumerate(reader, start=2):
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != 2 or not row[0].strip() or not row[1].strip():
                    problems.append(f"line {lineno}: expected two non-empty names, got {row!r}")
                    continue
                entries[row[0].strip()] = row[1].strip()
        if problems:
            raise LabelMapError(f"{path}: " + "; ".join(problems))
        return cls(entries)

    def resolve(self, folder: str) -> ResolvedLabel:
        """Resolve one folder name; see the module docstring for the rules."""
        key = _key(folder)
        if key in self._pinyin:
            english = self._pinyin[key]
            kind = LabelKind.ENGLISH if _key(english) == key else LabelKind.PINYIN
            return ResolvedLabel(folder, folder if kind is LabelKind.ENGLISH else english, kind)
        if key in self._english:
            return ResolvedLabel(folder, folder, LabelKind.ENGLISH)
        return ResolvedLabel(folder, folder, LabelKind.UNKNOWN)

    def to_english(self, folder: str) -> str:
        """English name for a folder name (unknown names come back unchanged)."""
        return self.resolve(folder).english

    def to_pinyin(self, english: str) -> str:
        """The preferred Pinyin term for an English name; ``KeyError`` when there is none."""
        try:
            return self._to_pinyin[_key(english)]
        except KeyError:
            raise KeyError(f"no Pinyin term for the English defect type {english!r}") from None

    def known_english(self) -> list[str]:
        """Every English name the table knows, sorted."""
        return sorted(set(self.pinyin_to_english.values()))
