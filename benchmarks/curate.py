"""Benchmark: ``select`` and ``prune`` at scale, and against random on real data, side by side.

1. Scale: synthetic unit vectors (a Gaussian mixture of 10 classes x 4 sub-groups; 10 % of the rows are
   near-copies of another row, planted) at each ``--sizes`` n: seconds of the shared kNN graph, of
   ``select_to_label`` (typicality and coverage, ``--budget`` rows, 10 % of the rows labelled) and of
   ``select_to_keep`` (keep a third), peak RSS, and whether a planted copy pair was ever chosen twice
   (select) or kept twice (prune) against the same for random choice.
2. PPE train (3 augmented copies of each photo; truth = the ``<orig>.rf.`` prefix), EfficientNet-Lite0
   whole-image vectors in fp32: ``prune --keep 0.34`` distinct photos kept vs random; ``select`` with a
   budget of a third of the pool: photos chosen twice vs random, with the plain copy rule and with the denoised
   copy view (``--denoise-copies``, :mod:`dinoscope.embed.views`); ``split``'s units (70 / 20 / 10 by images):
   photos across splits, both ways and random; and the seconds of the plain embedding and of the denoised
   view, side by side, both computed afresh (an empty content cache).
Usage: python benchmarks/curate.py [--sizes 100000,200000] [--dim 384] [--budget 1000] [--no-ppe]
Timings on a shared machine are noisy; the ratios in one run are what to compare.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.realdata: the PPE truth

from dinoscope.analysis.curation import build_curation_graph
from dinoscope.analysis.pruning import select_to_keep
from dinoscope.analysis.selection import select_to_label


def synthetic(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors (n, dim) float32 unit rows, class_id (n,), copy_of (n,): the planted original, -1 none)."""
    rng = np.random.default_rng(seed)
    class_id = rng.integers(0, 10, n)
    centres = rng.normal(size=(10, dim))
    subs = centres[:, None, :] + 0.6 * rng.normal(size=(10, 4, dim))
    sub = rng.integers(0, 4, n)
    vectors = np.empty((n, dim), np.float32)
    for start in range(0, n, 65536):
        sl = slice(start, min(n, start + 65536))
        vectors[sl] = subs[class_id[sl], sub[sl]] + 0.35 * rng.normal(size=(sl.stop - sl.start, dim))
    copy_of = np.full(n, -1)
    copies = rng.choice(np.arange(n // 2, n), n // 10, replace=False)
    copy_of[copies] = rng.integers(0, n // 2, len(copies))
    vectors[copies] = vectors[copy_of[copies]] + 0.02 * rng.normal(size=(len(copies), dim))
    class_id[copies] = class_id[copy_of[copies]]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, class_id, copy_of


def _pairs_chosen(rows: np.ndarray, copy_of: np.ndarray) -> int:
    """Planted copy pairs with both members among ``rows``."""
    chosen = np.zeros(len(copy_of), bool)
    chosen[rows] = True
    return int((chosen & (copy_of >= 0) & chosen[np.maximum(copy_of, 0)]).sum())


def scale(n: int, dim: int, budget: int) -> None:
    vectors, class_id, copy_of = synthetic(n, dim)
    rng = np.random.default_rng(1)
    labelled = np.zeros(n, bool)
    labelled[rng.choice(n, n // 10, replace=False)] = True
    t0 = time.perf_counter()
    graph = build_curation_graph(vectors)
    t_graph = time.perf_counter() - t0
    line = [f"n={n:>9,} dim={dim}: graph {t_graph:7.1f} s ({graph.method})"]
    for strategy in ("typicality", "coverage"):
        t0 = time.perf_counter()
        sel = select_to_label(vectors, labelled, budget, strategy, graph=graph)
        t = time.perf_counter() - t0
        random = rng.choice(np.flatnonzero(~labelled), budget, replace=False)
        line.append(f"select {strategy} {t:6.1f} s (copy pairs chosen {_pairs_chosen(sel.rows, copy_of)} vs "
                    f"random {_pairs_chosen(random, copy_of)})")  # fmt: skip
    t0 = time.perf_counter()
    kept = select_to_keep(vectors, class_id, np.arange(n), n // 3, graph=graph)
    t = time.perf_counter() - t0
    random = rng.choice(n, n // 3, replace=False)
    kept_rows = np.flatnonzero(kept.image_kept)
    line.append(f"prune 1/3 {t:6.1f} s (copy pairs kept {_pairs_chosen(kept_rows, copy_of)} vs random "
                f"{_pairs_chosen(random, copy_of)})")  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print("; ".join(line) + f"; peak RSS {peak:.1f} GB", flush=True)


def ppe() -> None:
    import os
    import tempfile

    from tests import realdata

    from dinoscope.embed.spec import CropSpec
    from dinoscope.embed.stage import EmbeddingModel
    from dinoscope.embed.views import embed_denoised

    os.environ["DINOSCOPE_CACHE"] = tempfile.mkdtemp()  # both views computed afresh, timed side by side
    table, groups = realdata.ppe_whole_images()
    started = time.perf_counter()
    vectors = realdata.vectors_of(table, Path(tempfile.mkdtemp()) / "ppe")  # fp32 on the CPU
    t_plain = time.perf_counter() - started
    started = time.perf_counter()
    model = EmbeddingModel("efficientnet-lite0", device="cpu", precision="fp32")
    denoised, _ = embed_denoised(table, model, CropSpec(), cache_root=Path(os.environ["DINOSCOPE_CACHE"]))
    t_view = time.perf_counter() - started
    print(f"PPE embedding ({len(table)} images, fp32, cold cache): plain {t_plain:.1f} s, denoised view "
          f"{t_view:.1f} s (select / split embed {1 + t_view / t_plain:.2f}x as long)")  # fmt: skip
    photo = np.array([Path(s).name.split(".rf.")[0] for s in table.data["source"]])
    judged = groups >= 0
    n_photos = len(np.unique(groups[judged]))
    n, rng = len(vectors), np.random.default_rng(0)
    n_keep = round(0.34 * n)
    kept = select_to_keep(vectors, np.full(n, -1), np.arange(n), n_keep)
    share = len(np.unique(groups[kept.image_kept & judged])) / n_photos
    random = np.mean([len(np.unique(groups[np.isin(np.arange(n), rng.choice(n, n_keep, replace=False)) & judged]))
                      / n_photos for _ in range(50)])  # fmt: skip
    print(
        f"PPE prune --keep 0.34 ({n_keep} of {n} images, fp32): distinct photos kept {share:.1%} | random {random:.1%}"
    )
    labelled = np.isin(photo, sorted(set(photo))[::10])
    budget = int((~labelled).sum()) // 3
    for strategy in ("typicality", "coverage"):
        for name, views in (("plain rule", []), ("denoised view", [denoised])):
            started = time.perf_counter()
            sel = select_to_label(vectors, labelled, budget, strategy, views=views)
            t = time.perf_counter() - started
            picked = groups[sel.rows]
            twice = int(np.sum(np.bincount(picked[picked >= 0]) > 1))
            rand = groups[rng.choice(np.flatnonzero(~labelled), budget, replace=False)]
            rand_twice = int(np.sum(np.bincount(rand[rand >= 0]) > 1))
            print(f"PPE select {strategy} ({name}), budget {budget} of a pool of {(~labelled).sum()}: "
                  f"{len(sel.rows)} chosen, photos chosen twice {twice} | random {rand_twice} ({t:.1f} s)")  # fmt: skip
    _ppe_split(vectors, denoised, groups, rng)


def _ppe_split(vectors: np.ndarray, denoised: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> None:
    """Photos across splits of ``split``'s units (70 / 20 / 10 by images), plain rule vs the denoised view."""
    from dinoscope.analysis.curation import find_view_copy_groups
    from dinoscope.analysis.resplit import assign_splits, find_units

    judged = groups >= 0
    ratios = {"train": 0.7, "val": 0.2, "test": 0.1}
    graph = build_curation_graph(vectors)
    for name, views in (("plain rule", []), ("denoised view", [denoised])):
        copy_group, _, _ = find_view_copy_groups(vectors, graph, views)
        unit = find_units(len(vectors), np.arange(len(vectors)), copy_group)
        split = assign_splits(np.bincount(unit)[:, None].astype(float), ratios)[unit]
        crossing = sum(len(set(split[judged & (groups == g)])) > 1 for g in np.unique(groups[judged]))
        random = rng.choice(3, len(vectors), p=list(ratios.values()))
        rand_crossing = sum(len(set(random[judged & (groups == g)])) > 1 for g in np.unique(groups[judged]))
        print(f"PPE split units ({name}): photos across splits {crossing} of {len(np.unique(groups[judged]))} | "
              f"random by image {rand_crossing}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,200000")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--no-ppe", action="store_true")
    args = parser.parse_args()
    if not args.no_ppe:
        ppe()
    for n in (int(s) for s in args.sizes.split(",") if s):
        scale(n, args.dim, args.budget)


if __name__ == "__main__":
    main()
