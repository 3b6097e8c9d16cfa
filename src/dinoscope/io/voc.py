"""Pascal VOC XML datasets.

Layouts read:
- ``Annotations/*.xml`` with ``JPEGImages/``; splits from ``ImageSets/Main/{train,val,test}.txt`` (then
  ``trainval.txt`` for ids in none of those), else ``all``;
- a folder (tree) of XML files beside their images; splits from folder names (train/val/test), else ``all``.

Class names come from ``classes.txt`` (or ``labels.txt``) in the folder, and names outside it are reported as
``unknown_class``; without such a file they are the sorted set of names found in the XML files. An XML's image
is ``<filename>`` in the images folder (or in ``<folder>/`` under the root), else the XML's stem with any image
extension.

Coordinates: VOC ``bndbox`` values are 1-based indices of the first and last pixel the box covers, so they
become 0-based continuous ``xyxy`` as ``x1 = xmin - 1``, ``y1 = ymin - 1``, ``x2 = xmax``, ``y2 = ymax``
(``xmin=1, xmax=10`` is a 10 px wide box starting at the image edge). Boxes past the image are reported
(``coords_out_of_range``) and clipped. ``label_ref`` is ``<xml>:<line of the <object> element>``.

Extra columns: ``difficult`` and ``truncated`` (bool).
"""

from __future__ import annotations

import glob
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from dinoscope.errors import DatasetFormatError
from dinoscope.io._build import TableBuilder
from dinoscope.io.images import is_image_file, list_images
from dinoscope.io.paths import relpath
from dinoscope.io.yolo import split_of
from dinoscope.table import ObjectTable

__all__ = ["read_voc"]

_SPLIT_FILES = ("train", "val", "test", "trainval")  # earlier files win for ids listed in several
_CLASS_FILES = ("classes.txt", "labels.txt")
_BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")
_TRUE = frozenset({"1", "1.0", "true", "yes"})


@dataclass
class _Xml:
    """One annotation file: its parsed tree (None when unreadable) and where its elements start."""

    path: Path
    rel: str
    tree: ET.Element | None = None
    lines: dict[str, list[int]] = field(default_factory=dict)  # tag of each child of the root -> lines
    error: str = ""
    error_line: int = 0
    image: Path | None = None
    looked_in: str = ""  # the folder searched for the image, relative to the root
    split: str = "all"

    def line_of(self, tag: str) -> int:
        return self.lines.get(tag, [0])[0]


def read_voc(path: str | Path) -> ObjectTable:
    """Read a Pascal VOC dataset into an :class:`ObjectTable`.

    Args:
        path: The VOC folder (holding ``Annotations/`` and ``JPEGImages/``), or a folder of XML files beside
            their images.

    Returns:
        The object table (root: ``path``); problems met while reading are in ``table.findings``.

    Raises:
        DatasetFormatError: ``path`` is not a folder, holds no XML file, or its class list repeats a name.

    Example:
        >>> table = read_voc("VOCdevkit/VOC2012")  # doctest: +SKIP
        >>> table.data.groupby("split")["difficult"].mean()  # doctest: +SKIP
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: not a folder; pass the VOC folder (Annotations/ + JPEGImages/)")
    if (root / "Annotations").is_dir():
        image_dir = root / "JPEGImages" if (root / "JPEGImages").is_dir() else root
        xml_paths, images = sorted((root / "Annotations").glob("*.xml")), list_images(image_dir)
        image_sets = _read_image_sets(root)
    else:
        image_dir, images, image_sets = None, list_images(root), None
        xml_paths = sorted(p for p in root.rglob("*.xml") if not any(s[0] == "." for s in p.relative_to(root).parts))
    if not xml_paths:
        raise DatasetFormatError(
            f"{root}: no VOC XML file found (looked for Annotations/*.xml and *.xml beside images); "
            "point to the VOC folder"
        )
    xmls = [_parse_xml(p, root) for p in xml_paths]
    names, class_file = _class_names(root, xmls)
    builder = TableBuilder(root, names, "voc")
    for x in xmls:
        x.image, x.looked_in = _find_image(x, root, image_dir), relpath(image_dir or x.path.parent, root)
        x.split = image_sets.get(x.path.stem, "all") if image_sets is not None else split_of(x.rel)
    _register_images(builder, images, xmls, image_sets)
    reader = _Reader(builder, {n: i for i, n in enumerate(names)}, class_file)
    for x in xmls:
        reader.add_xml(x)
    return builder.build()


# --- files ---------------------------------------------------------------------------------------------
def _read_image_sets(root: Path) -> dict[str, str]:
    """Image id → split from ``ImageSets/Main/<split>.txt`` (one id per line)."""
    splits: dict[str, str] = {}
    for split in _SPLIT_FILES:
        listing = root / "ImageSets" / "Main" / f"{split}.txt"
        if listing.is_file():
            for line in _read_lines(listing):
                splits.setdefault(line.split()[0], split)
    return splits


def _read_lines(path: Path) -> list[str]:
    """Non-blank lines of a text file, stripped."""
    try:
        return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{path}: cannot read as UTF-8 text ({exc}); save it as UTF-8") from exc


def _parse_xml(path: Path, root: Path) -> _Xml:
    x = _Xml(path, relpath(path, root))
    try:
        data = path.read_bytes()
        tree = ET.fromstring(data)
    except ET.ParseError as exc:
        x.error = f"not well-formed XML ({exc}); fix or re-export the file"
        x.error_line = exc.position[0]
        return x
    except OSError as exc:
        x.error = f"cannot read the file ({exc.strerror or exc}); check its permissions"
        return x
    if tree.tag != "annotation":
        x.error, x.error_line = f"root element is <{tree.tag}>, expected <annotation> (Pascal VOC)", 1
        return x
    x.tree, x.lines = tree, _child_lines(data)
    return x


def _child_lines(data: bytes) -> dict[str, list[int]]:
    """Start line of every child element of the root, by tag (expat knows where each element starts)."""
    parser = expat.ParserCreate()
    lines: dict[str, list[int]] = {}
    depth = 0

    def start(name: str, _attrs: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth == 2:
            lines.setdefault(name, []).append(parser.CurrentLineNumber)

    def end(_name: str) -> None:
        nonlocal depth
        depth -= 1

    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.Parse(data, True)
    return lines


def _class_names(root: Path, xmls: list[_Xml]) -> tuple[list[str], str]:
    """Names from a class list file (and its name), else the sorted names found in the XML files."""
    for file_name in _CLASS_FILES:
        listing = root / file_name
        if listing.is_file():
            names = _read_lines(listing)
            repeated = sorted({n for i, n in enumerate(names) if n in names[:i]})
            if repeated:
                raise DatasetFormatError(f"{listing}: class names {repeated} are listed twice; keep one line each")
            return names, file_name
    found = {(o.findtext("name") or "").strip() for x in xmls if x.tree is not None for o in x.tree.findall("object")}
    return sorted(found - {""}), ""


def _find_image(x: _Xml, root: Path, image_dir: Path | None) -> Path | None:
    base = image_dir or x.path.parent
    filename = (x.tree.findtext("filename") or "").strip() if x.tree is not None else ""
    folder = (x.tree.findtext("folder") or "").strip() if x.tree is not None else ""
    candidates = [base / filename, *([root / folder / filename] if folder else [])] if filename else []
    for candidate in candidates:
        if candidate.is_file() and is_image_file(candidate):
            return candidate
    for stem in dict.fromkeys([x.path.stem, Path(filename).stem if filename else x.path.stem]):
        for candidate in sorted(base.glob(glob.escape(stem) + ".*")):
            if is_image_file(candidate):
                return candidate
    return None


def _register_images(
    builder: TableBuilder, images: list[Path], xmls: list[_Xml], image_sets: dict[str, str] | None
) -> None:
    """Register every image (listed or named by an XML) once; report the ones without an XML file."""
    xml_of = {}
    for x in xmls:
        if x.image is not None:
            xml_of.setdefault(x.image.resolve(), x)
    paths = sorted({p.resolve(): p for p in [*images, *(x.image for x in xmls if x.image)]}.values())
    found = [xml_of.get(p.resolve()) for p in paths]
    splits = [
        x.split
        if x is not None
        else (image_sets.get(p.stem, "all") if image_sets is not None else split_of(relpath(p, builder.root)))
        for p, x in zip(paths, found, strict=True)
    ]
    builder.add_images(paths, splits, [x.rel if x is not None else "" for x in found])
    for path, x, split in zip(paths, found, splits, strict=True):
        if x is None:
            builder.finding(
                "missing_label_file",
                f"no XML annotation names this image (expected {path.stem}.xml); it counts as background - "
                "add an XML without <object> to mark it so on purpose",
                relpath(path, builder.root),
                split=split,
            )


# --- objects -------------------------------------------------------------------------------------------
class _Reader:
    """Adds the objects of each XML file to the builder, reporting at ``<xml>:<line>``."""

    def __init__(self, builder: TableBuilder, class_index: dict[str, int], class_file: str) -> None:
        self.builder, self.class_index, self.class_file = builder, class_index, class_file

    def add_xml(self, x: _Xml) -> None:
        def report(kind: str, line: int, message: str) -> None:
            self.builder.finding(kind, message, x.rel, line, split=x.split)

        if x.tree is None:
            report("unreadable_annotations", x.error_line, x.error)
            return
        if x.image is None:
            filename = (x.tree.findtext("filename") or "").strip()
            message = f"no image {filename!r} nor {x.path.stem}.* in {x.looked_in}/"
            report("label_without_image", x.line_of("filename"), message + "; add the image or remove the XML")
            return
        source = relpath(x.image, self.builder.root)
        image = self.builder.image(source)
        stated = tuple(_number(x.tree.findtext(f"size/{tag}")) for tag in ("width", "height"))
        actual = (image["width"], image["height"])
        if not image["error"] and all(v and v > 0 for v in stated) and stated != actual:
            message = f"<size> states {stated[0]:g}x{stated[1]:g} but {source} is {actual[0]}x{actual[1]}"
            report("size_mismatch", x.line_of("size"), message + "; fix <width> and <height>")
        objects = x.tree.findall("object")
        if not objects:
            report("background_image", 0, "no <object> in the file: background image")
        lines = x.lines.get("object", [])
        for i, obj in enumerate(objects):
            line = lines[i] if i < len(lines) else 0
            problem = self._add_object(obj, source, x.rel, line)
            if problem:
                report(*problem)

    def _add_object(self, obj: ET.Element, source: str, xml_rel: str, line: int) -> tuple[str, int, str] | None:
        """Add one <object>; returns (kind, line, message) when it cannot be read."""
        name = (obj.findtext("name") or "").strip()
        if not name:
            return "malformed_line", line, "<object> has no <name>; add the class name"
        if name not in self.class_index:
            listed = f"{self.class_file} ({len(self.class_index)} names)"
            return "unknown_class", line, f"class {name!r} is not in {listed}; add it there or fix the name"
        box = obj.find("bndbox")
        if box is None:
            return "malformed_line", line, "<object> has no <bndbox>; add one with xmin, ymin, xmax, ymax"
        texts = [(box.findtext(tag) or "").strip() for tag in _BOX_TAGS]
        values = [_number(t) for t in texts]
        if any(v is None for v in values):
            got = ", ".join(f"{t}={v!r}" for t, v in zip(_BOX_TAGS, texts, strict=True))
            return "malformed_line", line, f"<bndbox> needs numbers xmin, ymin, xmax, ymax; got {got}"
        xmin, ymin, xmax, ymax = values
        self.builder.add_object(
            source,
            self.class_index[name],
            (xmin - 1.0, ymin - 1.0, xmax, ymax),
            xml_rel,
            line,
            clip=False,
            difficult=_flag(obj, "difficult"),
            truncated=_flag(obj, "truncated"),
        )
        return None


def _number(text: str | None) -> float | None:
    """A finite float from element text, or None."""
    try:
        value = float((text or "").strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _flag(obj: ET.Element, tag: str) -> bool:
    return (obj.findtext(tag) or "0").strip().lower() in _TRUE
