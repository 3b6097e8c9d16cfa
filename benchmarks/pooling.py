"""Evidence for the pooling default: kNN accuracy of each pooling mode on labelled box crops.

For a model (any name ``create_backend`` accepts), embeds the box crops of a YOLO dataset once per pooling
mode and prints the leave-one-out kNN accuracy with the DINOv2 evaluation protocol (cosine similarity, k=20,
votes weighted by exp(sim / 0.07)). Run it with real weights (a local folder or the HF cache) to choose.
Usage: python benchmarks/pooling.py --model dinov2-small [--dataset ../shared/data/ppe-hardhat-vest] [--n 600]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dinoscope.embed.crops import crops_for_table
from dinoscope.embed.registry import create_backend
from dinoscope.io.yolo import read_yolo

PPE = Path(__file__).resolve().parents[2] / "shared/data/ppe-hardhat-vest"
MODES = {"hf-dinov2": ["cls", "mean", "cls+mean", "all-mean"], "timm": ["cls", "mean", "cls+mean", "all-mean", "avg"]}


def knn_accuracy(vectors: np.ndarray, labels: np.ndarray, k: int = 20, temperature: float = 0.07) -> float:
    """Leave-one-out weighted kNN accuracy (DINOv2 protocol) on L2-normalised vectors."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    idx = np.argpartition(-sims, k, axis=1)[:, :k]
    weights = np.exp(np.take_along_axis(sims, idx, axis=1) / temperature)
    votes = np.zeros((len(vectors), labels.max() + 1))
    np.add.at(votes, (np.repeat(np.arange(len(vectors)), k), labels[idx].ravel()), weights.ravel())
    return float((votes.argmax(axis=1) == labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--dataset", type=Path, default=PPE)
    parser.add_argument("--n", type=int, default=600, help="crops (first images of the dataset)")
    args = parser.parse_args()
    table = read_yolo(args.dataset)
    table = table[np.arange(min(args.n, len(table)))]
    base = create_backend(args.model)
    modes = MODES.get(base.spec.backend, [base.spec.pooling])
    s = base.spec
    crops = crops_for_table(table, s)
    labels = table.class_id
    print(f"{args.model}: {len(crops)} crops of {args.dataset.name}, classes {list(table.class_names)}")
    for mode in modes:
        backend = create_backend(args.model, pooling=mode)
        vecs = np.concatenate([np.asarray(backend.embed(crops[i : i + 32])) for i in range(0, len(crops), 32)])
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        print(f"  pooling {mode:9s}: kNN accuracy {knn_accuracy(vecs, labels):.3f}")


if __name__ == "__main__":
    main()
