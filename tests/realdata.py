"""Real data with known truths, built from ../shared by seeded rules (tests and ``benchmarks/quality.py``).

- :func:`deeppcb_merged`: DeepPCB defect boxes, the six types merged into two classes (missing copper: open,
  mousebite, pin-hole; extra copper: short, spur, spurious copper); truth = the original type.
- :func:`deeppcb_flipped`: DeepPCB defect boxes with a seeded share of labels changed to another class; truth =
  which ones.
- :func:`ppe_whole_images`: PPE train images as whole-image objects; truth = the ``<orig>.rf.`` copy group of
  each file (files whose name starts with ``img`` are not one photo per prefix: their group is -1, left out).

:func:`vectors_of` embeds a table through dinoscope's own engine (content cache, fp32 on the CPU), and the
metrics and plain baselines the issue names are here too, so every measurement uses the same ones.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from dinoscope.table import ObjectTable

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEEPPCB = SHARED / "data" / "deeppcb"
PPE = SHARED / "data" / "ppe-hardhat-vest"
#: DeepPCB type ids (open, short, mousebite, spur, spurious_copper, pin_hole) -> merged class.
MERGED_CLASSES = ("missing_copper", "extra_copper")
MERGE = np.array([0, 1, 0, 1, 1, 0])


def deeppcb_merged(root: Path = DEEPPCB) -> tuple[ObjectTable, np.ndarray]:
    """(boxes labelled with the two merged classes, (N,) original type id)."""
    from dinoscope.io.dataset import read_dataset

    table = read_dataset(root)
    truth = table.class_id.copy()
    data = table.data.assign(class_id=MERGE[truth], class_name=np.array(MERGED_CLASSES)[MERGE[truth]])
    return replace(table, data=data, class_names=MERGED_CLASSES), truth


def deeppcb_flipped(root: Path = DEEPPCB, frac: float = 0.05, seed: int = 0) -> tuple[ObjectTable, np.ndarray]:
    """(boxes with ``frac`` of their labels changed to a random other class, (N,) bool: flipped)."""
    from dinoscope.io.dataset import read_dataset

    table = read_dataset(root)
    rng = np.random.default_rng(seed)
    n, k = len(table), len(table.class_names)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, size=round(frac * n), replace=False)] = True
    labels = table.class_id.copy()
    labels[flipped] = (labels[flipped] + rng.integers(1, k, size=int(flipped.sum()))) % k
    data = table.data.assign(class_id=labels, class_name=np.array(table.class_names)[labels])
    return replace(table, data=data), flipped


def ppe_whole_images(root: Path = PPE) -> tuple[ObjectTable, np.ndarray]:
    """(one whole-image object per PPE image, (N,) copy-group id; -1 = not part of the truth)."""
    from dinoscope.io.dataset import read_dataset

    table = read_dataset(root).whole_images()
    names = [Path(s).name for s in table.data["source"]]
    keys = [m.group(1) if (m := re.match(r"(.+?)\.rf\.", n)) and not n.startswith("img") else "" for n in names]
    ids = {k: i for i, k in enumerate(sorted({k for k in keys if k}))}
    return table, np.array([ids[k] if k else -1 for k in keys])


def vectors_of(table: ObjectTable, run_dir: Path, model: str = "efficientnet-lite0") -> np.ndarray:
    """(N, D) float32 unit vectors of the table's objects, through dinoscope's engine and content cache (fp32)."""
    from dinoscope.embed.cache_files import resolve_cache_root
    from dinoscope.embed.spec import CropSpec
    from dinoscope.embed.stage import EmbeddingModel, embed_into_run
    from dinoscope.embed.store import EmbeddingStore
    from dinoscope.run import Run

    cache = resolve_cache_root(None)
    run = Run.create(run_dir, overwrite=True)
    run.write_objects(table)
    built = EmbeddingModel(model, device="cpu", precision="fp32", cache_root=cache)
    result = embed_into_run(run, table, built, CropSpec(), cache_root=cache, overwrite=True)
    store = EmbeddingStore.open(result.store_path.parent, result.store_path.stem)
    vectors = np.asarray(store.vectors, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# --- metrics ------------------------------------------------------------------------------------------------
def group_pairs(groups: np.ndarray) -> set[tuple[int, int]]:
    """Every pair of rows sharing a group id >= 0 (a truth's groups or the groups an analysis found)."""
    pairs: set[tuple[int, int]] = set()
    for g in np.unique(groups[groups >= 0]):
        rows = np.flatnonzero(groups == g).tolist()
        pairs.update((a, b) for i, a in enumerate(rows) for b in rows[i + 1 :])
    return pairs


def pair_scores(found: set[tuple[int, int]], truth: set[tuple[int, int]], judged: np.ndarray) -> tuple[float, float]:
    """(precision, recall) of found pairs; pairs touching a row outside the truth (``judged`` False) are not
    counted either way."""
    found = {p for p in found if judged[p[0]] and judged[p[1]]}
    tp = len(found & truth)
    return tp / max(len(found), 1), tp / max(len(truth), 1)


def precision_at_k(score: np.ndarray, positive: np.ndarray) -> float:
    """Share of positives among the k lowest scores (low = suspicious), k = number of positives."""
    k = int(positive.sum())
    return float(positive[np.argsort(score, kind="stable")[:k]].mean()) if k else 0.0


# --- plain baselines ----------------------------------------------------------------------------------------
def kmeans_told_k(vectors: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(k, n_init=10, random_state=seed).fit_predict(vectors)


def mutual_top2_pairs(vectors: np.ndarray) -> set[tuple[int, int]]:
    """Pairs that are each other's top-2 neighbours (cosine)."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :2]
    near = [set(row.tolist()) for row in top]
    return {(min(i, j), max(i, j)) for i, row in enumerate(near) for j in row if i in near[j]}


def knn_vote_quality(vectors: np.ndarray, labels: np.ndarray, k: int = 10) -> np.ndarray:
    """Share of each row's k nearest neighbours that carry its label (low = suspicious)."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :k]
    return (labels[top] == labels[:, None]).mean(axis=1)


def cv_logistic_quality(vectors: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold probability of each row's own label from a cross-validated logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    model = LogisticRegression(max_iter=2000)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    probs = cross_val_predict(model, vectors, labels, cv=cv, method="predict_proba")
    return probs[np.arange(len(labels)), labels]
