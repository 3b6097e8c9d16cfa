"""The object table: one row per object (a box crop, a whole image, a video frame, a mask instance).

Every source becomes an :class:`ObjectTable`; every later stage (embedding, analyses, report) reads it.
It wraps a pandas DataFrame whose columns are checked when the table is built, carries the class names,
the dataset root and a companion table of images (one row per image, including images without objects),
and is subset with boolean masks or index arrays, which return new tables.

Geometry columns are stored as scalars (``x1 y1 x2 y2`` in pixels, ``image_w image_h``) so that Parquet
files stay flat and fast; :attr:`ObjectTable.xyxy` and :attr:`ObjectTable.image_wh` give them as arrays.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dinoscope.errors import DatasetFormatError
from dinoscope.types import Finding

__all__ = ["IMAGE_COLUMNS", "OBJECT_COLUMNS", "ObjectTable", "compute_object_ids"]

#: Required object columns and their dtypes.
OBJECT_COLUMNS: dict[str, str] = {
    "object_id": "object",
    "source": "object",
    "frame": "int64",
    "split": "object",
    "class_id": "int64",
    "class_name": "object",
    "x1": "float64",
    "y1": "float64",
    "x2": "float64",
    "y2": "float64",
    "image_w": "int64",
    "image_h": "int64",
    "origin": "object",
    "confidence": "float64",
    "label_ref": "object",
    "content_hash": "object",
}

#: Required image columns (one row per image file or video frame source).
IMAGE_COLUMNS: dict[str, str] = {
    "source": "object",
    "split": "object",
    "width": "int64",
    "height": "int64",
    "content_hash": "object",
    "label_file": "object",
    "n_objects": "int64",
    "error": "object",
}

ORIGINS = ("label", "prediction", "image")
_META_KEY = b"dinoscope"


def compute_object_ids(
    content_hash: Sequence[str], frame: Sequence[int], xyxy: np.ndarray, class_id: Sequence[int]
) -> np.ndarray:
    """Stable object ids from source content, frame, box and class.

    Two objects with the same content, frame, box (rounded to 0.01 px) and class get an occurrence
    suffix so that every row stays addressable.

    Args:
        content_hash: (N,) hex content hash of each object's source file.
        frame: (N,) frame index, -1 for still images.
        xyxy: (N, 4) boxes in pixels.
        class_id: (N,) class ids.

    Returns:
        (N,) array of 20-character hex strings.

    Example:
        >>> len(compute_object_ids(["ab"], [-1], np.array([[0, 0, 4, 4.0]]), [0])[0])
        20
    """
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    ids = np.empty(len(xyxy), dtype=object)
    seen: dict[str, int] = {}
    for i, (h, f, box, c) in enumerate(zip(content_hash, frame, xyxy, class_id, strict=True)):
        key = f"{h}|{int(f)}|{','.join(f'{v:.2f}' for v in box)}|{int(c)}"
        n = seen.get(key, 0)
        seen[key] = n + 1
        if n:
            key += f"|{n}"
        ids[i] = hashlib.blake2b(key.encode(), digest_size=10).hexdigest()
    return ids


@dataclass(frozen=True)
class ObjectTable:
    """A validated table of objects plus the dataset context it came from.

    Attributes:
        data: One row per object; columns :data:`OBJECT_COLUMNS` plus optional ``polygon`` (flat pixel
            ``x, y`` list), ``obb`` (8 pixel corner coordinates), ``mask_ref`` and free metadata.
        class_names: Names indexed by ``class_id``.
        images: One row per image (columns :data:`IMAGE_COLUMNS`), objects or not.
        root: Dataset root that ``source`` paths are relative to.
        format: Name of the reader that built it (``yolo``, ``coco``, ...).
        findings: Problems met while reading (malformed lines, missing images, ...).
    """

    data: pd.DataFrame
    class_names: tuple[str, ...]
    images: pd.DataFrame = field(default_factory=lambda: _empty(IMAGE_COLUMNS))
    root: Path | None = None
    format: str = ""
    findings: tuple[Finding, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "data", _conform(self.data, OBJECT_COLUMNS, "object table"))
        object.__setattr__(self, "images", _conform(self.images, IMAGE_COLUMNS, "image table"))
        self._validate()

    def _validate(self) -> None:
        d = self.data
        if len(d) == 0:
            return
        bad_origin = ~d["origin"].isin(ORIGINS)
        if bad_origin.any():
            raise ValueError(f"origin must be one of {ORIGINS}; got {sorted(set(d['origin'][bad_origin]))}")
        cid = d["class_id"].to_numpy()
        if (cid >= len(self.class_names)).any() or (cid < -1).any():
            raise ValueError(
                f"class_id must be in [-1, {len(self.class_names) - 1}] for {len(self.class_names)} "
                f"class names; got range [{cid.min()}, {cid.max()}]"
            )
        if (d["x2"] < d["x1"]).any() or (d["y2"] < d["y1"]).any():
            raise ValueError("boxes must satisfy x1 <= x2 and y1 <= y2 (xyxy in pixels)")
        if d["object_id"].duplicated().any():
            dup = d["object_id"][d["object_id"].duplicated()].iloc[0]
            raise ValueError(f"object_id must be unique; {dup!r} appears more than once")

    # --- access -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: Any) -> ObjectTable:
        """Subset with a boolean mask, an integer index array or a slice; returns a new table."""
        if isinstance(index, str):
            raise TypeError("use table.data[column] for a column; table[mask] subsets rows")
        if isinstance(index, pd.Series):
            index = index.to_numpy()
        if isinstance(index, slice):
            sub = self.data.iloc[index]
        else:
            index = np.asarray(index)
            if index.dtype == bool and len(index) != len(self):
                raise IndexError(f"boolean mask has length {len(index)}, table has {len(self)} rows")
            sub = self.data.iloc[np.flatnonzero(index) if index.dtype == bool else index]
        return replace(self, data=sub.reset_index(drop=True))

    @property
    def xyxy(self) -> np.ndarray:
        """(N, 4) float64 boxes in pixels."""
        return self.data[["x1", "y1", "x2", "y2"]].to_numpy(dtype=np.float64)

    @property
    def image_wh(self) -> np.ndarray:
        """(N, 2) int64 image width and height of each object's source."""
        return self.data[["image_w", "image_h"]].to_numpy(dtype=np.int64)

    @property
    def class_id(self) -> np.ndarray:
        """(N,) int64 class ids (-1 for unlabelled objects)."""
        return self.data["class_id"].to_numpy()

    @property
    def object_id(self) -> np.ndarray:
        """(N,) object ids."""
        return self.data["object_id"].to_numpy()

    @property
    def splits(self) -> list[str]:
        """Splits present among the images, in a natural order (train, val, test, others)."""
        order = {"train": 0, "val": 1, "valid": 1, "test": 2}
        names = set(self.images["split"]) | set(self.data["split"])
        return sorted(names, key=lambda s: (order.get(s, 3), s))

    def class_counts(self) -> pd.Series:
        """Objects per class name, every class listed (zeros included), in class id order."""
        counts = self.data["class_name"].value_counts()
        return pd.Series([int(counts.get(n, 0)) for n in self.class_names], index=list(self.class_names))

    def whole_images(self) -> ObjectTable:
        """One object per readable image (whole-image box, class -1, origin ``image``), for frame-level work."""
        img = self.images[self.images["error"] == ""].reset_index(drop=True)
        n = len(img)
        data = pd.DataFrame(
            {
                "source": img["source"],
                "frame": np.full(n, -1),
                "split": img["split"],
                "class_id": np.full(n, -1),
                "class_name": [""] * n,
                "x1": np.zeros(n),
                "y1": np.zeros(n),
                "x2": img["width"].astype(float),
                "y2": img["height"].astype(float),
                "image_w": img["width"],
                "image_h": img["height"],
                "origin": ["image"] * n,
                "confidence": np.full(n, np.nan),
                "label_ref": [""] * n,
                "content_hash": img["content_hash"],
            }
        )
        ids = compute_object_ids(
            data["content_hash"], data["frame"], data[["x1", "y1", "x2", "y2"]].to_numpy(), data["class_id"]
        )
        data.insert(0, "object_id", ids)
        return replace(self, data=data)

    def with_columns(self, **columns: Any) -> ObjectTable:
        """A new table with columns added or replaced (arrays of length N or scalars)."""
        return replace(self, data=self.data.assign(**columns))

    # --- persistence ------------------------------------------------------------------------------
    def to_parquet(self, path: str | Path) -> Path:
        """Write objects to ``path`` and images to ``<stem>.images.parquet`` beside it."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        meta = {
            "class_names": list(self.class_names),
            "root": str(self.root) if self.root else None,
            "format": self.format,
            "findings": [f.to_dict() for f in self.findings],
        }
        for frame, target in ((self.data, path), (self.images, _images_path(path))):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            schema_meta = dict(table.schema.metadata or {})
            schema_meta[_META_KEY] = json.dumps(meta).encode()
            pq.write_table(table.replace_schema_metadata(schema_meta), target)
        return path

    @classmethod
    def read_parquet(cls, path: str | Path) -> ObjectTable:
        """Read a table written by :meth:`to_parquet`."""
        import pyarrow.parquet as pq

        from dinoscope.types import Severity

        path = Path(path)
        if not path.is_file():
            raise DatasetFormatError(f"{path}: no such object table (expected a file written by dinoscope)")
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(_META_KEY)
        if raw is None:
            raise DatasetFormatError(f"{path}: Parquet file has no dinoscope metadata; not an object table")
        meta = json.loads(raw)
        images_path = _images_path(path)
        images = pq.read_table(images_path).to_pandas() if images_path.is_file() else None
        findings = tuple(Finding(**{**f, "severity": Severity(f["severity"])}) for f in meta.get("findings", []))
        return cls(
            data=table.to_pandas(),
            class_names=tuple(meta["class_names"]),
            images=images if images is not None else _empty(IMAGE_COLUMNS),
            root=Path(meta["root"]) if meta.get("root") else None,
            format=meta.get("format", ""),
            findings=findings,
        )

    @classmethod
    def concat(cls, tables: Iterable[ObjectTable]) -> ObjectTable:
        """Stack tables that share class names (e.g. several videos); findings and images are joined.

        Ids stay as they were, except that an object present in several tables gets an occurrence suffix
        from its second appearance on (see :func:`compute_object_ids`).
        """
        tables = list(tables)
        if not tables:
            raise ValueError("concat needs at least one table")
        names = tables[0].class_names
        for t in tables[1:]:
            if t.class_names != names:
                raise ValueError(f"class names differ: {names} vs {t.class_names}")
        data = pd.concat([t.data for t in tables], ignore_index=True)
        if data["object_id"].duplicated().any():  # the same object in two tables (e.g. a leaked image)
            data["object_id"] = compute_object_ids(
                data["content_hash"], data["frame"], data[["x1", "y1", "x2", "y2"]].to_numpy(), data["class_id"]
            )
        return replace(
            tables[0],
            data=data,
            images=pd.concat([t.images for t in tables], ignore_index=True),
            findings=tuple(f for t in tables for f in t.findings),
        )


def _images_path(path: Path) -> Path:
    return path.with_name(path.stem + ".images.parquet")


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


def _conform(frame: pd.DataFrame, columns: dict[str, str], what: str) -> pd.DataFrame:
    """Check required columns and cast them to their dtypes; a frame already in shape is returned as is."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} is missing columns {missing}; required: {list(columns)}")
    casts = {c: t for c, t in columns.items() if frame[c].dtype != t}
    if not casts and isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1:
        return frame
    out = frame.copy()
    for col, dtype in casts.items():
        try:
            out[col] = out[col].astype(dtype)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{what} column {col!r} must be {dtype}: {exc}") from exc
    return out.reset_index(drop=True)
