"""CVAT exports: "Segmentation mask 1.1" (masks in label colours) and "CVAT for images 1.1" (XML shapes).

Traps handled (checked against CVAT's exporters):

- Segmentation mask 1.1 writes ``SegmentationClass/<name>.png`` in the task's label *colours*: pixels are
  mapped by the colour each label has in ``labelmap.txt`` (``name:r,g,b:parts:actions``), never by line order.
  Images without annotations get no PNG at all but are listed in ``ImageSets/Segmentation/<subset>.txt``:
  they are entries whose mask is empty. ``SegmentationObject/`` (instances) is not needed for a binary mask.
- Mask and COCO exports drop polylines; only the XML keeps them, and cracks are often drawn as polylines: they
  are drawn here at ``line_width`` pixels with round joints and caps. CVAT brush masks in the XML are its own
  run-length code (``rle``: alternating background/foreground runs, row-major, over the box ``left top width
  height``). Boxes and points carry no area and are ignored (counted in the notes). A video export (``<track>``
  elements, "CVAT for video 1.1") is refused with the fix.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from dinoscope.errors import DatasetFormatError
from dinoscope.io.images import list_images
from dinoscope.io.paths import relpath
from dinoscope.io.seg_exports import MaskEntry, SegmentationExport, choose_labels, find_images_dir

__all__ = ["read_cvat_mask_export", "read_cvat_xml_export", "read_labelmap"]

_BACKGROUND = frozenset({"background", "_background_", "__background__"})
_AREA_SHAPES = ("polygon", "polyline", "mask", "ellipse")


# --- Segmentation mask 1.1 ---------------------------------------------------------------------------------
def read_labelmap(path: Path) -> dict[str, tuple[int, int, int]]:
    """Label name -> RGB colour from a CVAT/VOC ``labelmap.txt`` (comment lines skipped).

    Raises:
        DatasetFormatError: A line is not ``name:r,g,b:...`` (file and line named).

    Example:
        >>> read_labelmap(Path("export/labelmap.txt"))  # doctest: +SKIP
        {'background': (0, 0, 0), 'crack': (250, 50, 83)}
    """
    out: dict[str, tuple[int, int, int]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(":")
        rgb = parts[1].split(",") if len(parts) > 1 else []
        if len(rgb) != 3 or not all(v.strip().isdigit() and int(v) < 256 for v in rgb):
            raise DatasetFormatError(
                f"{path}:{number}: expected 'label:r,g,b:parts:actions' (r, g, b in 0..255); got {line.strip()!r}"
            )
        out[parts[0].strip()] = (int(rgb[0]), int(rgb[1]), int(rgb[2]))
    return out


def read_cvat_mask_export(path: Path, labels: Sequence[str] | None = None) -> SegmentationExport:
    """Read a CVAT "Segmentation mask 1.1" export folder (see the module docstring).

    Example:
        >>> export = read_cvat_mask_export(Path("task_3_seg"), ["crack"])  # doctest: +SKIP
    """
    labelmap_path = path / "labelmap.txt"
    if not labelmap_path.is_file():
        raise DatasetFormatError(
            f"{path}: no labelmap.txt; a CVAT Segmentation mask 1.1 export has it (the label colours) - re-export"
        )
    colours = read_labelmap(labelmap_path)
    names = [n for n in colours if n.lower() not in _BACKGROUND]
    chosen = choose_labels(names, labels, "labelmap.txt")
    known = np.array(sorted(set(colours.values())), dtype=np.int64).reshape(-1, 3)
    wanted = np.array([colours[c] for c in chosen], dtype=np.int64).reshape(-1, 3)
    class_dir = path / "SegmentationClass"
    pngs = {relpath(p.with_suffix(""), class_dir): p for p in list_images(class_dir)} if class_dir.is_dir() else {}
    listed = _listed_stems(path / "ImageSets" / "Segmentation")
    entries = []
    for stem in list(dict.fromkeys([*listed, *sorted(pngs)])):
        png = pngs.get(stem)
        ref = relpath(png, path) if png else f"ImageSets/Segmentation: {stem} (no PNG: not annotated)"
        entries.append(MaskEntry(stem, ref, None, _colour_reader(png, known, wanted, path)))
    return SegmentationExport("cvat-mask", path, tuple(names), chosen, entries, find_images_dir(path))


def _listed_stems(folder: Path) -> list[str]:
    stems: list[str] = []
    for txt in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
        stems += [ln.strip().split()[0] for ln in txt.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return stems


def _colour_reader(
    png: Path | None, known: np.ndarray, wanted: np.ndarray, root: Path
) -> Callable[[], np.ndarray | None]:
    def read() -> np.ndarray | None:
        if png is None:
            return None
        try:
            with Image.open(png) as img:
                rgb = np.asarray(img.convert("RGB")).astype(np.int64)
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetFormatError(f"{relpath(png, root)}: cannot decode the mask ({exc}); re-export") from exc
        code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        known_codes = (known[:, 0] << 16) | (known[:, 1] << 8) | known[:, 2]
        stray = ~np.isin(code, known_codes)
        if stray.any():
            y, x = np.argwhere(stray)[0]
            raise DatasetFormatError(
                f"{relpath(png, root)}: {int(stray.sum())} px in colours not in labelmap.txt, e.g. "
                f"{tuple(int(v) for v in rgb[y, x])} at x={x} y={y}; export the masks and labelmap.txt together"
            )
        return np.isin(code, (wanted[:, 0] << 16) | (wanted[:, 1] << 8) | wanted[:, 2])

    return read


# --- CVAT for images 1.1 (XML) -----------------------------------------------------------------------------
def read_cvat_xml_export(path: Path, labels: Sequence[str] | None = None, line_width: int = 3) -> SegmentationExport:
    """Read a CVAT for images 1.1 export (``annotations.xml`` or its folder; see the module docstring).

    Example:
        >>> export = read_cvat_xml_export(Path("task_3_xml"), ["crack"], line_width=5)  # doctest: +SKIP
    """
    xml_path = path if path.is_file() else path / "annotations.xml"
    root = xml_path.parent
    try:
        doc = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else 0
        raise DatasetFormatError(f"{xml_path}:{line}: invalid XML ({exc}); re-export the task") from exc
    except OSError as exc:
        raise DatasetFormatError(f"{xml_path}: cannot read ({exc})") from exc
    images = doc.findall("image")
    if doc.find("track") is not None and not images:
        raise DatasetFormatError(
            f"{xml_path}: <track> elements (CVAT for video 1.1); re-export the task as 'CVAT for images 1.1'"
        )
    declared = [(n.text or "").strip() for n in doc.findall(".//labels/label/name")]
    seen = [s.get("label", "") for img in images for s in img]
    names = [n for n in dict.fromkeys([*declared, *seen]) if n and n.lower() not in _BACKGROUND]
    chosen = choose_labels(names, labels, xml_path.name)
    ignored = sum(1 for img in images for s in img if s.tag in ("box", "points", "skeleton", "cuboid"))
    notes = [f"{xml_path.name}: {ignored} box/point shape(s) ignored (no area)"] if ignored else []
    entries = []
    for img in images:
        w, h = int(float(img.get("width", 0))), int(float(img.get("height", 0)))
        shapes = [s for s in img if s.tag in _AREA_SHAPES and s.get("label") in chosen]
        where = f"{xml_path.name}: image {img.get('name')!r} (id {img.get('id')})"
        has_any = any(s.tag in _AREA_SHAPES for s in img)
        entries.append(
            MaskEntry(str(img.get("name", "")), where, (w, h), _shape_reader(shapes, w, h, line_width, has_any, where))
        )
    return SegmentationExport("cvat-xml", root, tuple(names), chosen, entries, find_images_dir(root), notes)


def _shape_reader(
    shapes: list[ET.Element], w: int, h: int, line_width: int, has_any: bool, where: str
) -> Callable[[], np.ndarray | None]:
    def read() -> np.ndarray | None:
        if not has_any:
            return None
        canvas = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(canvas)
        mask = np.zeros((h, w), dtype=bool)
        for shape in shapes:
            if shape.tag == "mask":
                mask |= _cvat_rle(shape, w, h, where)
            else:
                _draw(draw, shape, line_width, where)
        return mask | (np.asarray(canvas) > 0)

    return read


def _points(shape: ET.Element, where: str) -> list[tuple[float, float]]:
    try:
        pts = [tuple(float(v) for v in p.split(",")) for p in shape.get("points", "").split(";") if p]
    except ValueError as exc:
        raise DatasetFormatError(f"{where}: {shape.tag} points {shape.get('points')!r} are not 'x,y;x,y'") from exc
    if any(len(p) != 2 for p in pts):
        raise DatasetFormatError(f"{where}: {shape.tag} points {shape.get('points')!r} are not 'x,y;x,y'")
    return pts  # type: ignore[return-value]


def _draw(draw: ImageDraw.ImageDraw, shape: ET.Element, line_width: int, where: str) -> None:
    if shape.tag == "ellipse":
        cx, cy, rx, ry = (float(shape.get(k, 0)) for k in ("cx", "cy", "rx", "ry"))
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=1)
        return
    pts = _points(shape, where)
    if shape.tag == "polygon" and len(pts) >= 3:
        draw.polygon(pts, fill=1, outline=1)
    elif pts:  # a polyline (or a degenerate polygon): a stroke with round joints and caps
        if len(pts) > 1:
            draw.line(pts, fill=1, width=line_width, joint="curve")
        r = (line_width - 1) / 2
        for x, y in (pts[0], pts[-1]):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=1)


def _cvat_rle(shape: ET.Element, w: int, h: int, where: str) -> np.ndarray:
    """Decode CVAT's XML mask code: alternating 0/1 runs, row-major, over the box ``left top width height``."""
    try:
        left, top, bw, bh = (int(float(shape.get(k, "")) + 0.5) for k in ("left", "top", "width", "height"))
        runs = [int(v) for v in shape.get("rle", "").split(",") if v.strip()]
    except ValueError as exc:
        raise DatasetFormatError(f"{where}: mask needs integer rle, left, top, width, height ({exc})") from exc
    if sum(runs) != bw * bh:
        raise DatasetFormatError(f"{where}: mask rle runs sum to {sum(runs)}, expected width*height = {bw * bh}")
    flat = np.repeat(np.arange(len(runs)) % 2 == 1, runs).reshape(bh, bw)
    out = np.zeros((h, w), dtype=bool)
    y1, x1 = min(h, top + bh), min(w, left + bw)
    if y1 > top and x1 > left:
        out[top:y1, left:x1] = flat[: y1 - top, : x1 - left]
    return out
