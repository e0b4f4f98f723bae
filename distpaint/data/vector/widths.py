"""Width rules: how wide each vector feature is burnt, and which classes are burnt at all.

A `WidthRule` picks one width source:

- the data's own widths (SUMO lane widths, SVG stroke widths), the default;
- `width`: one fixed width for every feature;
- `width_attr`: a numeric attribute (OSM `width=3.5`, `"4 m"`; a list such as
  `"['3', '4']"` gives its largest value);
- `lanes_attr` x `lane_width`: a lane count attribute times a lane width (default 3.2 m);
- `class_attr` (alone): the class mapped through a table (`class_widths`, by default
  `OSM_HIGHWAY_WIDTHS`; overridable from a YAML/JSON file with `load_class_widths`).

Widths are in CRS units (metres for georeferenced data); where the source gives none, the
feature gets `default_width`. `include` / `exclude` are glob patterns on the class (from
`class_attr`, else the reader's own class such as SUMO's edge type). A pattern matches a class
or its last dot-separated part, so `footway` matches both OSM's `footway` and SUMO's
`highway.footway`. A feature with several classes ("highway.service|railway.tram") is kept when
any one class is included and not excluded. `min_width_px` is applied when burning: no line is
thinner than that many pixels, so thin lines never break into pieces (>= 1 px keeps a line
8-connected).

Usage::

    from distpaint.data.vector.widths import WidthRule, select, resolve_widths
    rule = WidthRule(class_attr="highway", exclude=("footway", "railway.*"))
    kept = select(lines, rule)                 # features passing the class filters
    widths = resolve_widths(kept, rule)        # float array, CRS units, all finite
"""

from __future__ import annotations

import ast
import fnmatch
import json
import math
import os
import pathlib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from distpaint.data.vector.lines import VectorLines
from distpaint.errors import ConfigError, InputError

__all__ = [
    "WidthRule",
    "OSM_HIGHWAY_WIDTHS",
    "CAP_STYLES",
    "JOIN_STYLES",
    "load_class_widths",
    "class_parts",
    "classes_of",
    "select",
    "resolve_widths",
    "parse_number",
]

OSM_HIGHWAY_WIDTHS: dict[str, float] = {
    "motorway": 14.0, "motorway_link": 7.0,
    "trunk": 12.0, "trunk_link": 6.0,
    "primary": 10.0, "primary_link": 6.0,
    "secondary": 8.0, "secondary_link": 5.0,
    "tertiary": 7.0, "tertiary_link": 5.0,
    "residential": 6.0, "unclassified": 5.0, "road": 5.0,
    "living_street": 5.0, "service": 4.0, "pedestrian": 4.0, "busway": 4.0,
    "track": 3.0, "bridleway": 2.0,
    "footway": 2.0, "path": 2.0, "cycleway": 2.0, "steps": 2.0,
}
"""Typical carriageway widths in metres of OSM `highway` classes (whole road, both directions)."""

CAP_STYLES = ("round", "flat", "square")
JOIN_STYLES = ("round", "mitre", "bevel")


def _positive(value: float | None, what: str) -> None:
    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)
                                  and value > 0):
        raise ConfigError(f"{what} must be a positive number, got {value!r}")


@dataclass
class WidthRule:
    """Which width each feature is burnt at and which classes are burnt (module docstring)."""

    width: float | None = None
    """One fixed width for every feature, in CRS units (metres for georeferenced data)."""
    width_attr: str | None = None
    """Attribute holding each feature's width in CRS units (e.g. OSM `width`)."""
    lanes_attr: str | None = None
    """Attribute holding a lane count; width = lanes x `lane_width`."""
    lane_width: float = 3.2
    """Width of one lane for `lanes_attr`, in CRS units."""
    class_attr: str | None = None
    """Attribute holding the class (e.g. `highway`); without another width source the class
    is mapped through `class_widths`. Also what `include`/`exclude` match (default: the
    reader's own class, e.g. SUMO's edge type)."""
    class_widths: dict[str, float] | None = None
    """Class -> width table for class widths; None: `OSM_HIGHWAY_WIDTHS`. Keys may be globs."""
    default_width: float = 1.0
    """Width of features the source gives none for (missing attribute, unknown class)."""
    include: tuple[str, ...] = ()
    """Glob patterns: when given, only features with a matching class are burnt."""
    exclude: tuple[str, ...] = ()
    """Glob patterns: features whose classes all match one of these are not burnt."""
    min_width_px: float = 1.0
    """Smallest burnt width in pixels, so thin lines stay connected (0: no minimum)."""
    cap: str = "round"
    """Line ends: "round", "flat" (ends exactly at the end points) or "square"."""
    join: str = "round"
    """Line corners: "round", "mitre" or "bevel"."""

    def __post_init__(self) -> None:
        sources = [k for k in ("width", "width_attr", "lanes_attr") if getattr(self, k) is not None]
        if len(sources) > 1:
            raise ConfigError(f"choose one width source, not {' and '.join(sources)}")
        _positive(self.width, "width")
        _positive(self.lane_width, "lane width")
        _positive(self.default_width, "default width")
        for key in ("width_attr", "lanes_attr", "class_attr"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{key.replace('_', ' ')} must be a non-empty name, "
                                  f"got {value!r}")
        if self.class_widths is not None:
            if not isinstance(self.class_widths, dict) or not self.class_widths:
                raise ConfigError("class widths must be a non-empty mapping of class -> width")
            table = {}
            for key, value in self.class_widths.items():
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    value = float("nan")
                _positive(value, f"class width of {key!r}")
                table[str(key)] = value
            self.class_widths = table
        if (self.class_widths is not None and self.mode != "class"):
            raise ConfigError("class widths need --class-attr and no other width source")
        self.include, self.exclude = tuple(self.include), tuple(self.exclude)
        for pattern in self.include + self.exclude:
            if not isinstance(pattern, str) or not pattern:
                raise ConfigError(f"class patterns must be non-empty strings, got {pattern!r}")
        if not (isinstance(self.min_width_px, (int, float)) and math.isfinite(self.min_width_px)
                and self.min_width_px >= 0):
            raise ConfigError(f"min width px must be >= 0, got {self.min_width_px!r}")
        if self.cap not in CAP_STYLES:
            raise ConfigError(f"cap must be one of {', '.join(CAP_STYLES)}, got {self.cap!r}")
        if self.join not in JOIN_STYLES:
            raise ConfigError(f"join must be one of {', '.join(JOIN_STYLES)}, got {self.join!r}")

    @property
    def mode(self) -> str:
        """Where widths come from: "fixed", "attr", "lanes", "class" or "data"."""
        if self.width is not None:
            return "fixed"
        if self.width_attr is not None:
            return "attr"
        if self.lanes_attr is not None:
            return "lanes"
        return "class" if self.class_attr is not None else "data"

    @property
    def table(self) -> dict[str, float]:
        """The class -> width table class widths use."""
        return dict(OSM_HIGHWAY_WIDTHS if self.class_widths is None else self.class_widths)

    def describe(self) -> dict[str, Any]:
        """The rule as JSON-ready attrs: the width source in use and its settings (the class
        table only when class widths are used; the class filters are recorded apart)."""
        out: dict[str, Any] = {"mode": self.mode}
        out.update({
            "fixed": {"width": self.width},
            "attr": {"width_attr": self.width_attr},
            "lanes": {"lanes_attr": self.lanes_attr, "lane_width": self.lane_width},
            "class": {"class_attr": self.class_attr, "class_widths": self.table},
            "data": {},
        }[self.mode])
        out.update(default_width=self.default_width, min_width_px=self.min_width_px,
                   cap=self.cap, join=self.join)
        return out


def load_class_widths(path: str | os.PathLike, base: dict[str, float] | None = None
                      ) -> dict[str, float]:
    """A class -> width table from a YAML or JSON mapping file, laid over `base` (default
    `OSM_HIGHWAY_WIDTHS`): entries in the file replace or add to the built-in ones."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the class widths file: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: not a valid class widths file: {first}") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: class widths must be a mapping of class: width (metres)")
    table = dict(OSM_HIGHWAY_WIDTHS if base is None else base)
    for key, value in data.items():
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if number is None or not math.isfinite(number) or number <= 0:
            raise ConfigError(f"{path}: width of class {key!r} must be a positive number, "
                              f"got {value!r}")
        table[str(key)] = float(number)
    return table


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _values(value: Any) -> list[Any]:
    """An attribute value as a list: OSMnx writes lists as their Python repr in GraphML."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return [v for item in value for v in _values(item)]
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                return _values(ast.literal_eval(text))
            except (ValueError, SyntaxError):
                pass
        return [text] if text else []
    return [value]


def parse_number(value: Any) -> float:
    """The largest number in an attribute value ("3.5", "4 m", 2, "['2', '3']"; ";"-separated
    OSM values), or NaN when there is none."""
    best = math.nan
    for item in _values(value):
        if isinstance(item, bool):
            continue
        if isinstance(item, (int, float, np.number)):
            numbers = [float(item)]
        else:
            numbers = [float(m) for m in _NUMBER.findall(str(item))]
        for number in numbers:
            if math.isfinite(number) and number > 0 and not number <= best:
                best = number
    return best


def class_parts(label: Any) -> list[str]:
    """The classes of one feature: "a|b" and lists give several; None gives none."""
    parts = []
    for item in _values(label):
        parts += [p.strip() for p in str(item).split("|") if p.strip()]
    return parts


def _matches(cls: str, patterns: tuple[str, ...]) -> bool:
    tail = cls.rsplit(".", 1)[-1]
    return any(fnmatch.fnmatchcase(cls, p) or fnmatch.fnmatchcase(tail, p) for p in patterns)


def classes_of(lines: VectorLines, rule: WidthRule, source: str = "") -> np.ndarray | None:
    """Each feature's class label: from `rule.class_attr` when set, else the reader's own."""
    if rule.class_attr is None:
        return lines.classes
    if rule.class_attr not in lines.attributes:
        have = ", ".join(sorted(lines.attributes)[:12]) or "none"
        raise ConfigError(f"{source or 'vector data'}: no attribute {rule.class_attr!r} for "
                          f"--class-attr (attributes: {have})")
    return lines.attributes[rule.class_attr]


def select(lines: VectorLines, rule: WidthRule, source: str = "") -> np.ndarray:
    """Bool array: the features that pass `rule.include` / `rule.exclude`."""
    n = len(lines)
    if not rule.include and not rule.exclude:
        return np.ones(n, dtype=bool)
    labels = classes_of(lines, rule, source)
    if labels is None:
        raise ConfigError(f"{source or 'vector data'}: has no classes to filter with "
                          "--include/--exclude; name the class attribute with --class-attr")
    keep = np.zeros(n, dtype=bool)
    verdicts: dict[Any, bool] = {}
    for i, label in enumerate(labels):
        key = label if isinstance(label, (str, type(None))) else repr(label)
        if key not in verdicts:
            parts = class_parts(label) or [""]
            verdicts[key] = any(
                (not rule.include or _matches(p, rule.include)) and not _matches(p, rule.exclude)
                for p in parts
            )
        keep[i] = verdicts[key]
    return keep


def _class_width(label: Any, table: dict[str, float], globs: list[str]) -> float:
    best = math.nan
    for part in class_parts(label):
        for candidate in (part, part.rsplit(".", 1)[-1]):
            width = table.get(candidate)
            if width is None:
                width = next((table[g] for g in globs if fnmatch.fnmatchcase(candidate, g)), None)
            if width is not None:
                best = width if math.isnan(best) else max(best, width)
                break
    return best


def resolve_widths(lines: VectorLines, rule: WidthRule, source: str = "") -> np.ndarray:
    """Each feature's width in CRS units under `rule` (finite; `default_width` where the source
    gives none). Polygons get a width too but are burnt filled, not buffered."""
    what = source or "vector data"
    mode = rule.mode
    if mode == "fixed":
        return np.full(len(lines), float(rule.width))
    if mode == "data":
        widths = lines.widths.copy()
    elif mode == "class":
        table = rule.table
        globs = [k for k in table if any(c in k for c in "*?[")]
        labels = classes_of(lines, rule, source)
        cache: dict[Any, float] = {}
        widths = np.empty(len(lines))
        for i, label in enumerate(labels):
            key = label if isinstance(label, (str, type(None))) else repr(label)
            if key not in cache:
                cache[key] = _class_width(label, table, globs)
            widths[i] = cache[key]
    else:
        attr = rule.width_attr if mode == "attr" else rule.lanes_attr
        if attr not in lines.attributes:
            have = ", ".join(sorted(lines.attributes)[:12]) or "none"
            option = "--width-attr" if mode == "attr" else "--lanes-attr"
            raise ConfigError(f"{what}: no attribute {attr!r} for {option} (attributes: {have})")
        widths = np.array([parse_number(v) for v in lines.attributes[attr]], dtype=float)
        if mode == "lanes":
            widths *= rule.lane_width
    widths[~np.isfinite(widths) | (widths <= 0)] = rule.default_width
    return widths


