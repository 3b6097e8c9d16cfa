"""The inspector's "similar objects": each shipped object's nearest objects of the run, shipped offline."""

from __future__ import annotations

import numpy as np
import pytest

from dinoscope.run import Run
from tests.report.conftest import Planted

pytest.importorskip("faiss")


def test_each_shipped_object_carries_its_nearest_objects(planted: Planted) -> None:
    dup_a, dup_b = planted.rows["dup_a"], planted.rows["dup_b"]  # identical vectors, classes 1 (rows 60..119)
    page = planted.page("class-001")
    objs = page["objs"]
    assert "nn" in objs and len(objs["nn"]) == len(objs["id"])
    table = Run.open(planted.run).read_objects().data
    id_a, id_b = table["object_id"].iloc[dup_a], table["object_id"].iloc[dup_b]
    k_a = objs["id"].index(id_a)
    first = objs["nn"][k_a][0]  # [class, index in its file, thumbnail cell, similarity, label reference]
    assert first[3] == pytest.approx(1.0, abs=1e-3)
    assert first[0] == 1 and objs["id"][first[1]] == id_b  # the duplicate, shipped: a clickable thumbnail
    assert all(len(n) == 8 for n in objs["nn"])
    sims = np.array([[n[3] for n in nn] for nn in objs["nn"]])
    assert np.all(np.diff(sims, axis=1) <= 1e-3)  # most similar first
    assert (planted.run / "index").is_dir()  # the run's search index, reused by `dinoscope search`


def test_the_inspector_has_the_similar_objects_action(planted: Planted) -> None:
    script = (planted.report / "assets" / "report.js").read_text(encoding="utf-8")
    assert "similar objects" in script and "function showSimilar" in script
