"""Benchmark: the embedding engine against the model's own speed and against the original method.

Side by side in one run, on box crops of ../shared/data/ppe-hardhat-vest, same model, batch size and threads:
1. model-only throughput: ``backend.embed`` on preloaded uint8 batches (the machine's compute bound), fp32
   and bf16;
2. dinoscope end to end (dataset files -> stored vectors, cache off), at each precision; ratio to (1), and the
   split of the cores between decoding and the model that the engine chose from its timed first batch,
   and the end-to-end speed of the fixed split it replaced (one decode worker beside a model on every core);
3. the original method: crops written as JPEG files, read back one by one with PIL, the slow HF image
   processor, fp32 forward in batches;
4. a cached re-run (new run directory, same data) as a fraction of the first run's time;
plus the mean cosine agreement between bf16 and fp32 vectors and the peak RSS.

Models: ``efficientnet-lite0`` (real weights) and randomly initialised DINOv2-small/-base-sized ViTs
(random weights are fine for timing). Usage:
    python benchmarks/embed.py [--models efficientnet-lite0,dinov2-small] [--n 128] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dinoscope.embed.base import Backend
from dinoscope.embed.crops import crops_for_table
from dinoscope.embed.registry import create_backend
from dinoscope.embed.store import EmbeddingStore
from dinoscope.io.yolo import read_yolo
from dinoscope.workflows.embed import embed

PPE = Path(__file__).resolve().parents[2] / "shared/data/ppe-hardhat-vest"
VIT_SIZES = {"dinov2-small": (384, 6), "dinov2-base": (768, 12)}


def random_dinov2(folder: Path, hidden: int, heads: int) -> Path:
    """A randomly initialised DINOv2 of a real size, saved as a Hugging Face folder."""
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    cfg = Dinov2Config(
        hidden_size=hidden, num_hidden_layers=12, num_attention_heads=heads, image_size=518, patch_size=14
    )
    Dinov2Model(cfg).save_pretrained(folder)
    BitImageProcessor(
        size={"shortest_edge": 256},
        crop_size={"height": 224, "width": 224},
        do_center_crop=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        resample=3,
    ).save_pretrained(folder)
    return folder


def subset_dataset(root: Path, n_objects: int) -> tuple[Path, int]:
    """A YOLO dataset (symlinked images) holding the first images of PPE up to ``n_objects`` boxes."""
    table = read_yolo(PPE)
    counts = table.data.groupby("source", sort=False).size()
    keep = counts.index[: int(np.searchsorted(counts.cumsum().to_numpy(), n_objects) + 1)]
    for sub in ("images", "labels"):
        (root / sub).mkdir(parents=True)
    for src in keep:
        stem = Path(src).stem
        (root / "images" / Path(src).name).symlink_to(PPE / src)
        shutil.copyfile(PPE / "train/labels" / f"{stem}.txt", root / "labels" / f"{stem}.txt")
    (root / "data.yaml").write_text(f"path: .\ntrain: images\nnames: {list(table.class_names)}\n")
    return root, int(counts[keep].sum())


def model_only(backend: Backend, crops: np.ndarray, batch: int) -> float:
    backend.embed(torch.from_numpy(crops[:batch]))  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(crops), batch):
        backend.embed(torch.from_numpy(crops[i : i + batch]))
    return len(crops) / (time.perf_counter() - t0)


def original(model_dir: Path, dataset: Path, workdir: Path, batch: int) -> float:
    """The reference pipeline: JPEG crops on disk, PIL one by one, slow HF processor, fp32."""
    from transformers import AutoImageProcessor, AutoModel

    table = read_yolo(dataset)
    processor = AutoImageProcessor.from_pretrained(model_dir, use_fast=False)
    model = AutoModel.from_pretrained(model_dir).eval()
    t0 = time.perf_counter()
    crop_dir = workdir / "crops"
    crop_dir.mkdir(parents=True)
    for source, g in table.data.groupby("source", sort=False):
        img = Image.open(dataset / source).convert("RGB")
        for i, row in enumerate(g.itertuples()):
            img.crop((row.x1, row.y1, row.x2, row.y2)).save(crop_dir / f"{Path(source).stem}_{i}.jpg", quality=95)
    files = sorted(crop_dir.iterdir())
    with torch.inference_mode():
        for i in range(0, len(files), batch):
            images = [Image.open(f).convert("RGB") for f in files[i : i + batch]]
            model(**processor(images=images, return_tensors="pt")).pooler_output.numpy()
    return len(files) / (time.perf_counter() - t0)


def run_model(name: str, args: argparse.Namespace, tmp: Path) -> None:
    model = name
    if name in VIT_SIZES:
        model = str(random_dinov2(tmp / name, *VIT_SIZES[name]))
    dataset, n = subset_dataset(tmp / f"data-{name}", args.n)
    table = read_yolo(dataset)
    backend = create_backend(model)
    spec = backend.spec
    crops = crops_for_table(table, spec)
    print(f"\n== {name}: {n} crops of {dataset.name}, batch {args.batch_size}, {torch.get_num_threads()} threads")
    vectors, rates = {}, {}
    for precision in args.precisions.split(","):
        backend.to("cpu", precision=precision)
        before = model_only(backend, crops, args.batch_size)
        out = tmp / f"run-{name}-{precision}"
        t0 = time.perf_counter()
        result = embed(
            dataset=dataset,
            out=out,
            model=model,
            precision=precision,
            batch_size=args.batch_size,
            no_cache=True,
            device="cpu",
        )
        e2e = n / (time.perf_counter() - t0)
        bound = (before + model_only(backend, crops, args.batch_size)) / 2  # before and after: the load drifts
        vectors[precision] = EmbeddingStore.open(out / "embeddings", None).as_array()
        rates[precision] = e2e
        print(
            f"{precision}: model-only {bound:7.1f} crops/s | dinoscope end-to-end {e2e:7.1f} crops/s "
            f"(engine loop {result.stats.objects_per_s:.1f}) | ratio {e2e / bound:.2f}"
        )
        print(f"   engine split: {result.stats.split or 'default (too few objects to calibrate)'}")
        t0 = time.perf_counter()  # the split before sizing: one decode worker beside a model on every core
        embed(dataset=dataset, out=out.with_name(out.name + "-w1"), model=model, precision=precision,
              batch_size=args.batch_size, no_cache=True, device="cpu", workers=1)  # fmt: skip
        fixed = n / (time.perf_counter() - t0)
        print(f"   fixed split (1 worker + {torch.get_num_threads()} threads): {fixed:7.1f} crops/s | sized / fixed "
              f"{e2e / fixed:.2f}")  # fmt: skip
    if "fp32" in vectors and "bf16" in vectors:
        cos = float((vectors["fp32"] * vectors["bf16"]).sum(axis=1).mean())
        print(f"mean cosine agreement bf16 vs fp32: {cos:.5f}")
    if name in VIT_SIZES:
        orig = original(Path(model), dataset, tmp / f"orig-{name}", args.batch_size)
        print(f"original method (JPEG crops, PIL, slow processor, fp32): {orig:7.1f} crops/s")
        for precision, rate in rates.items():
            print(f"dinoscope {precision} / original: {rate / orig:.2f}x")
    cache = tmp / f"cache-{name}"
    t0 = time.perf_counter()
    embed(
        dataset=dataset, out=tmp / f"c1-{name}", model=model, cache_dir=cache, device="cpu", batch_size=args.batch_size
    )
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = embed(dataset=dataset, out=tmp / f"c2-{name}", model=model, cache_dir=cache, device="cpu")
    second = time.perf_counter() - t0
    print(
        f"cached re-run: {second:.2f} s vs first {first:.2f} s = {second / first:.1%} "
        f"({again.stats.n_cached} from cache, {again.stats.n_computed} computed)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="efficientnet-lite0,dinov2-small")
    parser.add_argument("--n", type=int, default=128, help="crops per model")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--precisions", default="fp32,bf16")
    args = parser.parse_args()
    if not PPE.is_dir():
        raise SystemExit(f"needs {PPE}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            run_model(name, args, Path(tmp))
    print(f"\npeak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
