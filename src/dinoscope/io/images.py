"""Image files: the one place where bytes become RGB uint8 HWC arrays.

Decoding honours EXIF orientation and converts every mode (grey, palette, RGBA, 16-bit, CMYK) to RGB.
:func:`probe_images` reads each file once to get its content hash, its size (from the header, with EXIF
rotation applied) and whether it is complete, without decoding pixels unless a file looks truncated.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dinoscope.errors import DatasetFormatError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageProbe",
    "hash_bytes",
    "hash_file",
    "is_image_file",
    "list_files",
    "list_images",
    "probe_image",
    "probe_images",
    "read_image",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
_ROTATED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height
_EXIF_ORIENTATION_TAG = 0x0112
_PNG_END = b"IEND\xaeB`\x82"


def is_image_file(path: str | Path) -> bool:
    """True for a supported image extension, in any letter case."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (hidden files and folders skipped), sorted by path."""
    return list_files(folder, is_image_file, recursive)


def list_files(folder: str | Path, accept: Callable[[str], bool], recursive: bool = True) -> list[Path]:
    """Files under ``folder`` whose name ``accept`` takes (hidden ones skipped), sorted; [] if no folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in filenames if accept(f) and not f.startswith("."))
        if not recursive:
            break
    return sorted(found)


def hash_bytes(data: bytes) -> str:
    """Content hash used everywhere in dinoscope (BLAKE2b, 128 bits, hex)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def hash_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """:func:`hash_bytes` of a file's contents, read in chunks (videos, report files: no whole-file copy)."""
    digest = hashlib.blake2b(digest_size=16)
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_image(source: str | Path | bytes, *, max_side: int | None = None) -> np.ndarray:
    """Decode an image file (or its bytes) to an RGB uint8 array of shape (H, W, 3).

    Args:
        source: Path or encoded bytes.
        max_side: When given, JPEGs are decoded at a reduced scale (PIL draft mode) no smaller than
            this on their longer side; much faster for thumbnails of big photos.

    Raises:
        DatasetFormatError: The file is missing, not an image, or corrupt (message names the file).

    Example:
        >>> read_image("photo.jpg").shape  # doctest: +SKIP
        (416, 416, 3)
    """
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else Path(source)) as img:
            if max_side is not None and img.format == "JPEG":
                scale = max_side / max(img.size)
                if scale < 1:
                    img.draft("RGB", (int(img.size[0] * scale) + 1, int(img.size[1] * scale) + 1))
            return _to_rgb_array(img)
    except FileNotFoundError as exc:
        raise DatasetFormatError(f"{name}: image file not found") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetFormatError(f"{name}: cannot decode image ({exc}); re-export or remove the file") from exc


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max() or 1.0
        grey = (arr / top * 255.0).round().astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        lo, hi = float(arr.min()), float(arr.max())
        grey = ((arr - lo) / ((hi - lo) or 1.0) * 255.0).round().astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB") if img.mode != "RGB" else img)


@dataclass(frozen=True)
class ImageProbe:
    """What one read of an image file tells without decoding its pixels.

    Attributes:
        width: Width after EXIF rotation (0 when unreadable).
        height: Height after EXIF rotation (0 when unreadable).
        content_hash: Hash of the file bytes ("" when the file cannot be read).
        error: "" when fine, else the reason.
        error_kind: "", ``"unreadable_image"`` or ``"truncated_image"``.
    """

    width: int
    height: int
    content_hash: str
    error: str = ""
    error_kind: str = ""


def probe_image(path: str | Path, deep: bool = False) -> ImageProbe:
    """Read a file once: content hash, oriented size and completeness.

    Args:
        path: Image file.
        deep: Decode the pixels of every file (slow), not just of those whose end looks wrong.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return ImageProbe(0, 0, "", f"cannot read file: {exc.strerror or exc}", "unreadable_image")
    digest = hash_bytes(data)
    if not data:
        return ImageProbe(0, 0, digest, "empty file (0 bytes)", "unreadable_image")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            fmt = img.format
            orientation = img.getexif().get(_EXIF_ORIENTATION_TAG, 1)
            if deep or not _ends_cleanly(data, fmt):
                img.load()
    except UnidentifiedImageError:
        return ImageProbe(0, 0, digest, "not a decodable image (unknown or damaged format)", "unreadable_image")
    except SyntaxError as exc:
        return ImageProbe(0, 0, digest, f"not a decodable image ({exc})", "unreadable_image")
    except (OSError, ValueError) as exc:
        kind = "truncated_image" if "truncat" in str(exc).lower() else "unreadable_image"
        return ImageProbe(0, 0, digest, f"decoding failed: {exc}", kind)
    if orientation in _ROTATED_ORIENTATIONS:
        width, height = height, width
    return ImageProbe(int(width), int(height), digest)


def _ends_cleanly(data: bytes, fmt: str | None) -> bool:
    """Cheap completeness test from the file's last bytes (JPEG EOI marker, PNG IEND chunk)."""
    tail = data[-64:].rstrip(b"\x00")
    if fmt == "JPEG":
        return tail.endswith(b"\xff\xd9")
    if fmt == "PNG":
        return tail.endswith(_PNG_END)
    return True


def probe_images(
    paths: Sequence[str | Path] | Iterable[str | Path], deep: bool = False, n_workers: int | None = None
) -> list[ImageProbe]:
    """:func:`probe_image` over many files with a thread pool (I/O and hashing release the GIL)."""
    from dinoscope.progress import track

    paths = list(paths)
    if len(paths) < 16:
        return [probe_image(p, deep) for p in paths]
    n_workers = n_workers or min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(n_workers) as pool:
        probes = pool.map(lambda p: probe_image(p, deep), paths, chunksize=32)
        return list(track(probes, total=len(paths), description="reading images", unit="img"))
