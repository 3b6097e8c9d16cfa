"""Selection for large runs: sampled maps keep every listed object, the thumbnail budget is shared fairly."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dinoscope.report.select import Limits, _water_fill, plan_report


def _objects(n_per: list[int], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cls = np.repeat(np.arange(len(n_per)), n_per)
    n = len(cls)
    outlier = rng.random(n) < 0.02
    return pd.DataFrame(
        {
            "object_id": [f"o{i}" for i in range(n)],
            "source": [f"img{i // 3}.jpg" for i in range(n)],
            "frame": -1,
            "split": "train",
            "cls": cls,
            "cluster": rng.integers(-1, 3, n),
            "is_medoid": False,
            "is_representative": rng.random(n) < 0.05,
            "cluster_quality": rng.random(n),
            "is_outlier": outlier,
            "outlier_quality": np.where(outlier, rng.random(n) * 0.5, 0.5 + rng.random(n) * 0.5),
            "x": rng.normal(size=n),
            "y": rng.normal(size=n),
            "class_x": rng.normal(size=n),
            "class_y": rng.normal(size=n),
        }
    )


def test_water_fill_gives_small_demands_all_and_splits_the_rest() -> None:
    assert _water_fill([5, 100, 100], 105) == [5, 50, 50]
    assert _water_fill([5, 100, 100], 1000) == [5, 100, 100]
    assert sum(_water_fill([7, 3, 1000, 0], 50)) == 50


def test_large_class_maps_are_sampled_but_keep_listed_objects() -> None:
    objects = _objects([5_000, 300])
    limits = Limits(max_class_points=500, max_map_points=1_000, max_thumbnails=2_000)
    plan = plan_report(objects, ["big", "small"], limits)
    big, small = plan.classes
    assert len(big.drawn) == 500 and len(small.drawn) == 300
    assert set(big.outliers.tolist()) <= set(big.drawn.tolist())
    assert len(plan.global_drawn) == 1_000
    assert len(big.outliers) == min(limits.max_list, int(objects["is_outlier"][objects["cls"] == 0].sum()))
    assert (np.diff(objects["outlier_quality"].to_numpy()[big.outliers]) >= 0).all()  # worst first
    n_thumbs = len(big.thumbs) + len(small.thumbs)
    assert n_thumbs <= 2_000 and set(big.featured.tolist()) <= set(big.thumbs.tolist())
    # every point of the small class's map has a thumbnail; the big class gets the rest of the budget
    assert set(small.drawn.tolist()) <= set(small.thumbs.tolist())


def test_a_run_without_map_or_clusters_still_plans() -> None:
    objects = _objects([40]).drop(columns=["x", "y", "class_x", "class_y", "cluster", "is_representative"])
    plan = plan_report(objects, ["only"], Limits())
    assert len(plan.classes[0].drawn) == 0 and len(plan.global_drawn) == 0 and plan.classes[0].groups == []
