"""Tiny CVAT exports of one task in every format, with the traps of each, and the masks they must give.

The task: images a..e (64 x 48 px; e is really 32 x 32 on disk) plus g (in the image folder, not in the task);
f is named by the task but missing from the image folder.

- a: a ``crack`` polygon and a ``stain`` polygon;
- b: a ``crack`` polyline only (kept by the XML; mask and COCO exports drop polylines -> unannotated there);
- c: no annotation (mask export: listed in ImageSets, no PNG);
- d: a ``crack`` brush mask (COCO: uncompressed RLE with iscrowd 1; XML: CVAT's own rle; mask export: colour);
- e: a ``crack`` polygon, but the image on disk is smaller (size mismatch);
- f: a ``crack`` polygon, image missing.

Traps: labelmap.txt lists ``stain`` before ``crack`` with colours unrelated to line order; the stain in COCO is
a compressed RLE string.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

W, H = 64, 48
CRACK_RGB, STAIN_RGB = (250, 50, 83), (51, 221, 255)
CRACK_POLY = [(10.0, 10.0), (30.0, 12.0), (28.0, 30.0), (12.0, 26.0)]
STAIN_POLY = [(40.0, 30.0), (58.0, 30.0), (58.0, 44.0), (40.0, 44.0)]
CRACK_LINE = [(5.0, 40.0), (30.0, 20.0), (60.0, 22.0)]
LINE_WIDTH = 3
NAMES = ("a", "b", "c", "d", "e", "f")


def _poly_mask(points: list[tuple[float, float]]) -> np.ndarray:
    img = Image.new("L", (W, H), 0)
    ImageDraw.Draw(img).polygon(points, fill=1, outline=1)
    return np.asarray(img) > 0


def _line_mask(points: list[tuple[float, float]], width: int) -> np.ndarray:
    img = Image.new("L", (W, H), 0)
    ImageDraw.Draw(img).line(points, fill=1, width=width, joint="curve")
    return np.asarray(img) > 0


def brush_mask() -> np.ndarray:
    """A blob that no polygon describes (a ring with a hole)."""
    yy, xx = np.mgrid[:H, :W]
    r = np.hypot(xx - 45, yy - 15)
    return (r <= 9) & (r >= 3)


def expected(fmt: str) -> dict[str, np.ndarray | None]:
    """The ``crack`` mask each format must give per imported image (None: empty)."""
    return {
        "a": _poly_mask(CRACK_POLY),
        "b": _line_mask(CRACK_LINE, LINE_WIDTH) if fmt == "cvat-xml" else None,
        "c": None,
        "d": brush_mask(),
    }


def write_images(folder: Path) -> Path:
    """images a, b, c, d (64 x 48), e (32 x 32: the size trap) and g (not in the task); no f."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c", "d", "g"):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / "e.png")
    return folder


def write_cvat_mask_export(root: Path) -> Path:
    """CVAT "Segmentation mask 1.1": colours from labelmap.txt, unannotated images only in ImageSets."""
    (root / "SegmentationClass").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    (root / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
        f"stain:{','.join(map(str, STAIN_RGB))}::\ncrack:{','.join(map(str, CRACK_RGB))}::\n",
        encoding="utf-8",
    )
    (root / "ImageSets" / "Segmentation" / "default.txt").write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    for name, layers in {
        "a": [(_poly_mask(CRACK_POLY), CRACK_RGB), (_poly_mask(STAIN_POLY), STAIN_RGB)],
        "d": [(brush_mask(), CRACK_RGB)],
        "e": [(_poly_mask(CRACK_POLY), CRACK_RGB)],
        "f": [(_poly_mask(CRACK_POLY), CRACK_RGB)],
    }.items():
        rgb = np.zeros((H, W, 3), dtype=np.uint8)
        for mask, colour in layers:
            rgb[mask] = colour
        Image.fromarray(rgb).save(root / "SegmentationClass" / f"{name}.png")
    return root


def _flat(points: list[tuple[float, float]]) -> list[float]:
    return [v for p in points for v in p]


def _uncompressed_rle(mask: np.ndarray) -> list[int]:
    """COCO run lengths (column-major, starting with a background run)."""
    runs, current, n = [], False, 0
    for value in mask.T.ravel():
        if bool(value) == current:
            n += 1
        else:
            runs.append(n)
            current, n = bool(value), 1
    return [*runs, n]


def write_cvat_coco_export(root: Path) -> Path:
    """CVAT "COCO 1.0": polygons, the brush as uncompressed RLE (iscrowd 1), the stain as compressed RLE."""
    from pycocotools import mask as mask_api

    stain = mask_api.encode(np.asfortranarray(_poly_mask(STAIN_POLY).astype(np.uint8)))
    images = [{"id": i + 1, "file_name": f"{n}.png", "width": W, "height": H} for i, n in enumerate(NAMES)]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 2, "segmentation": [_flat(CRACK_POLY)], "iscrowd": 0},
        {
            "id": 2,
            "image_id": 1,
            "category_id": 1,
            "segmentation": {"size": [H, W], "counts": stain["counts"].decode()},
            "iscrowd": 1,
        },
        {
            "id": 3,
            "image_id": 4,
            "category_id": 2,
            "segmentation": {"size": [H, W], "counts": _uncompressed_rle(brush_mask())},
            "iscrowd": 1,
        },
        {"id": 4, "image_id": 5, "category_id": 2, "segmentation": [_flat(CRACK_POLY)], "iscrowd": 0},
        {"id": 5, "image_id": 6, "category_id": 2, "segmentation": [_flat(CRACK_POLY)], "iscrowd": 0},
    ]
    for a in anns:
        a.update(area=1.0, bbox=[0, 0, 1, 1])
    cats = [{"id": 1, "name": "stain"}, {"id": 2, "name": "crack"}]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    doc = {"images": images, "annotations": anns, "categories": cats}
    (root / "annotations" / "instances_default.json").write_text(json.dumps(doc), encoding="utf-8")
    return root


def _cvat_rle(mask: np.ndarray) -> tuple[str, int, int, int, int]:
    ys, xs = np.nonzero(mask)
    top, left, bottom, right = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
    flat = mask[top:bottom, left:right].ravel().astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    if flat[0]:
        runs = [0, *runs]
    return ", ".join(map(str, runs)), int(left), int(top), int(right - left), int(bottom - top)


def write_cvat_xml_export(root: Path) -> Path:
    """CVAT for images 1.1: polygons, a polyline (kept only here), a brush mask in CVAT's rle, a box (ignored)."""

    def pts(points: list[tuple[float, float]]) -> str:
        return ";".join(f"{x:.2f},{y:.2f}" for x, y in points)

    rle, left, top, bw, bh = _cvat_rle(brush_mask())
    shapes = {
        "a": f'<polygon label="crack" points="{pts(CRACK_POLY)}"/><polygon label="stain" points="{pts(STAIN_POLY)}"/>'
        '<box label="crack" xtl="1" ytl="1" xbr="5" ybr="5"/>',
        "b": f'<polyline label="crack" points="{pts(CRACK_LINE)}"/>',
        "c": "",
        "d": f'<mask label="crack" rle="{rle}" left="{left}" top="{top}" width="{bw}" height="{bh}"/>',
        "e": f'<polygon label="crack" points="{pts(CRACK_POLY)}"/>',
        "f": f'<polygon label="crack" points="{pts(CRACK_POLY)}"/>',
    }
    body = "".join(
        f'<image id="{i}" name="{n}.png" width="{W}" height="{H}">{shapes[n]}</image>' for i, n in enumerate(NAMES)
    )
    labels = "<label><name>stain</name></label><label><name>crack</name></label>"
    meta = f"<meta><task><labels>{labels}</labels></task></meta>"
    root.mkdir(parents=True, exist_ok=True)
    (root / "annotations.xml").write_text(
        f'<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version>{meta}{body}</annotations>\n',
        encoding="utf-8",
    )
    return root


WRITERS = {"cvat-mask": write_cvat_mask_export, "coco": write_cvat_coco_export, "cvat-xml": write_cvat_xml_export}


def write_seg_data(root: Path, n: int = 8, side: int = 64, seed: int = 0) -> Path:
    """A prepared data folder of ``n`` noisy grey images, each with one bright diagonal "crack" (its mask), and
    splits: the first ``n - 2`` train, the last 2 val."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    (root / "splits").mkdir(exist_ok=True)
    stems = []
    for i in range(n):
        img = rng.normal(90, 12, (side, side)).clip(0, 255)
        mask = Image.new("L", (side, side), 0)
        a, b = rng.integers(0, side, 2)
        ImageDraw.Draw(mask).line([(0, int(a)), (side - 1, int(b))], fill=255, width=3)
        m = np.asarray(mask) > 0
        img[m] = 200
        Image.fromarray(np.repeat(img.astype(np.uint8)[..., None], 3, axis=2)).save(root / "images" / f"s{i:02d}.png")
        mask.save(root / "masks" / f"s{i:02d}.png")
        stems.append(f"s{i:02d}")
    (root / "splits" / "train.txt").write_text("\n".join(stems[:-2]) + "\n", encoding="utf-8")
    (root / "splits" / "val.txt").write_text("\n".join(stems[-2:]) + "\n", encoding="utf-8")
    return root
