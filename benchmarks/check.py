"""Benchmark: `dinoscope check` on 10,000 images versus decoding every image once.

Builds a 10,000-image YOLO dataset from ../shared/data/ppe-hardhat-vest (each JPEG given a unique comment
segment so that every file has its own content hash; labels copied), then measures side by side:
1. dinoscope's full check (read labels, probe every image once: header, hash, completeness; all checks);
2. the naive way to validate images: decode every pixel with PIL (on a sample, per-image rate).
Prints both rates and their ratio. Usage: python benchmarks/check.py [--n 10000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

from dinoscope.workflows.check import check

PPE = Path(__file__).resolve().parents[2] / "shared/data/ppe-hardhat-vest/train"


def build_dataset(root: Path, n: int) -> None:
    sources = sorted((PPE / "images").glob("*.jpg"))
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        src = sources[i % len(sources)]
        data = src.read_bytes()
        comment = f"dinoscope-bench-{i}".encode()
        segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
        (root / "images" / f"{i:06d}.jpg").write_bytes(data[:2] + segment + data[2:])
        shutil.copyfile(PPE / "labels" / f"{src.stem}.txt", root / "labels" / f"{i:06d}.txt")
    (root / "data.yaml").write_text(
        "path: .\ntrain: images\nnames: [capacete, colete_refletivo, sem_capacete, sem_colete_refletivo]\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--decode-sample", type=int, default=2_000)
    args = parser.parse_args()
    if not PPE.is_dir():
        raise SystemExit(f"needs {PPE}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        build_dataset(root, args.n)
        t0 = time.perf_counter()
        report = check(dataset=root)
        t_check = time.perf_counter() - t0
        images = sorted((root / "images").iterdir())[: args.decode_sample]
        t0 = time.perf_counter()
        for p in images:
            with Image.open(p) as img:
                img.load()
        t_decode = time.perf_counter() - t0
    check_rate = args.n / t_check
    decode_rate = len(images) / t_decode
    print(f"images: {args.n}, objects: {report.totals['objects']}, findings: {len(report.findings)}")
    print(f"dinoscope check        : {t_check:7.2f} s  {check_rate:8.0f} images/s (labels + probe + all checks)")
    print(
        f"decode every image once: {args.n / decode_rate:7.2f} s  {decode_rate:8.0f} images/s (PIL load, "
        f"measured on {len(images)})"
    )
    print(f"ratio check / decode-only throughput: {check_rate / decode_rate:.2f}x")


if __name__ == "__main__":
    main()
