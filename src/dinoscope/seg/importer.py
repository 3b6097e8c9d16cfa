"""``seg import``: an annotation export + its images -> ``images/`` + ``masks/`` (0/255 PNG, same stem).

Every image the export names gets one status in ``import.csv``:

- ``imported``: image found, mask with foreground written;
- ``empty``: image found, no foreground of the chosen labels (listed without annotation, or annotated with
  other labels only): an all-zero mask is written, so background frames are kept as negatives;
- ``missing``: the export names an image that is not in the image folder (nothing written);
- ``size_mismatch``: the mask (or the size the export states) differs from the image's size (nothing written);
- ``unreadable``: the annotation or the image cannot be decoded (nothing written; the reason is given);
- ``unlisted``: an image of the image folder that the export does not name (nothing written).
"""

from __future__ import annotations

import csv
import logging
import shutil
import tempfile
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dinoscope.errors import ConfigError, DatasetFormatError
from dinoscope.io.images import is_image_file, list_images, probe_image
from dinoscope.io.paths import relpath
from dinoscope.io.seg_exports import ExportFormat, MaskEntry, read_segmentation_export
from dinoscope.outputs import prepare_output_dir
from dinoscope.progress import track
from dinoscope.seg.data import images_dir, masks_dir, write_mask

__all__ = ["STATUSES", "ImportResult", "import_export"]

logger = logging.getLogger(__name__)

STATUSES = ("imported", "empty", "missing", "size_mismatch", "unreadable", "unlisted")
REPORT_NAME = "import.csv"


@dataclass
class ImportResult:
    """What ``seg import`` did.

    Attributes:
        out: The output folder (``images/``, ``masks/``, ``import.csv``).
        format: The export kind read.
        labels: Labels of the export; ``chosen``: those imported as foreground.
        rows: One dict per file: ``name``, ``status``, ``stem``, ``foreground_px``, ``message``.
        notes: Remarks on the whole export.
    """

    out: Path
    format: str
    labels: tuple[str, ...]
    chosen: tuple[str, ...]
    rows: list[dict[str, object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Files per status (every status present, zeros included)."""
        found = Counter(str(r["status"]) for r in self.rows)
        return {s: found.get(s, 0) for s in STATUSES}


def import_export(
    export: str | Path,
    out: str | Path,
    images: str | Path | None = None,
    format: ExportFormat = "auto",
    labels: Sequence[str] | None = None,
    line_width: int = 3,
    overwrite: bool = False,
) -> ImportResult:
    """Convert a segmentation export into ``out/images`` + ``out/masks`` and report every file.

    Args:
        export: The export as CVAT downloads it (``.zip``, extracted to a temporary folder) or unzipped (folder,
            ``annotations.xml`` or COCO ``.json``).
        out: New (or empty) output folder; an existing one needs ``overwrite``.
        images: Folder of the task's images; default the export's own ``JPEGImages/`` or ``images/``.
        format: Export kind or ``auto``.
        labels: Labels whose union is the foreground (default: all).
        line_width: Polyline width in px (CVAT XML).
        overwrite: Write into a non-empty ``out`` (files written here are replaced, others are kept).

    Raises:
        ConfigError: No image folder given and none in the export; or the export is the output folder.
        DatasetFormatError: The export cannot be read.

    Example:
        >>> result = import_export("task_7_xml", "data/cracks", images="frames/", labels=["crack"])  # doctest: +SKIP
        >>> result.counts["imported"]  # doctest: +SKIP
        112
    """
    export_path, out = Path(export), Path(out)
    if export_path.suffix.lower() == ".zip" and export_path.is_file():
        with tempfile.TemporaryDirectory(prefix="dinoscope-export-") as tmp:
            _unzip(export_path, Path(tmp))
            return import_export(tmp, out, images, format, labels, line_width, overwrite)
    parsed = read_segmentation_export(export_path, format, labels, line_width)
    image_root = Path(images) if images is not None else parsed.images_dir
    if image_root is None or not image_root.is_dir():
        raise ConfigError(
            f"{export_path}: {'no image folder in the export' if images is None else f'{images}: not a folder'}; "
            "pass --images DIR (the folder of the task's images)"
        )
    if out.resolve() in (export_path.resolve(), image_root.resolve()):
        raise ConfigError(f"{out}: the output folder must differ from the export and the image folder")
    prepare_output_dir(out, overwrite)
    result = ImportResult(out, parsed.format, parsed.labels, parsed.chosen, notes=list(parsed.notes))
    index = _ImageIndex(image_root)
    used: set[Path] = set()
    stems: dict[str, str] = {}
    for entry in track(parsed.entries, description="importing masks", unit="image"):
        row = _import_one(entry, index, out, stems)
        found = index.find(entry.name)
        if found is not None:
            used.add(found)
        result.rows.append(row)
    for img in index.all:
        if img not in used:
            result.rows.append(_row(relpath(img, image_root), "unlisted", "", message="not named in the export"))
    _write_report(out / REPORT_NAME, result.rows)
    return result


class _ImageIndex:
    """Images of a folder found by the export's name: relative path, path without extension, or stem."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.all = list_images(root)
        self.by_rel = {relpath(p, root): p for p in self.all}
        self.by_noext = {relpath(p.with_suffix(""), root): p for p in self.all}
        stems = Counter(p.stem for p in self.all)
        self.by_stem = {p.stem: p for p in self.all if stems[p.stem] == 1}

    def find(self, name: str) -> Path | None:
        """The image an export names: ``sub/a.jpg``, ``sub/a`` (CVAT mask exports drop the extension) or ``a``."""
        if name in self.by_rel:
            return self.by_rel[name]
        base = str(Path(name).with_suffix("")) if is_image_file(name) else name
        return self.by_noext.get(base) or self.by_stem.get(Path(base).name)


def _row(name: str, status: str, stem: str, foreground_px: int = 0, message: str = "") -> dict[str, object]:
    return {"name": name, "status": status, "stem": stem, "foreground_px": foreground_px, "message": message}


def _import_one(entry: MaskEntry, index: _ImageIndex, out: Path, stems: dict[str, str]) -> dict[str, object]:
    image = index.find(entry.name)
    if image is None:
        return _row(entry.name, "missing", "", message=f"no such image in {index.root}; annotation: {entry.ref}")
    probe = probe_image(image)
    if probe.error:
        return _row(entry.name, "unreadable", "", message=f"{image}: {probe.error}")
    try:
        mask = entry.read()
    except DatasetFormatError as exc:
        return _row(entry.name, "unreadable", "", message=str(exc))
    size = (probe.width, probe.height)
    stated = entry.size_wh if mask is None else (mask.shape[1], mask.shape[0])
    if stated is not None and stated != size:
        return _row(
            entry.name,
            "size_mismatch",
            "",
            message=f"{entry.ref} is {stated[0]}x{stated[1]} px but {image.name} is {size[0]}x{size[1]} px; "
            "re-export the task or fix the image",
        )
    stem = relpath(image.with_suffix(""), index.root).replace("/", "__")
    if stem in stems:
        return _row(entry.name, "unreadable", "", message=f"same output stem {stem!r} as {stems[stem]}; rename one")
    stems[stem] = entry.name
    images_dir(out).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image, images_dir(out) / f"{stem}{image.suffix.lower()}")
    fg = np.zeros((size[1], size[0]), dtype=bool) if mask is None else mask
    write_mask(masks_dir(out) / f"{stem}.png", fg)
    n_fg = int(fg.sum())
    return _row(entry.name, "imported" if n_fg else "empty", stem, n_fg, "" if n_fg else "no foreground: empty mask")


def _unzip(archive: Path, folder: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as z:
            bad = [n for n in z.namelist() if Path(n).is_absolute() or ".." in Path(n).parts]
            if bad:
                raise DatasetFormatError(f"{archive}: unsafe path {bad[0]!r} in the archive; unzip it yourself")
            z.extractall(folder)
    except zipfile.BadZipFile as exc:
        raise DatasetFormatError(f"{archive}: not a readable zip ({exc}); download the export again") from exc


def _write_report(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["name", "status", "stem", "foreground_px", "message"])
        writer.writeheader()
        writer.writerows(rows)
