"""Where ``--engine ray`` runs decoding and the model (no Ray needed): the layout and the pieces of shards."""

from __future__ import annotations

import numpy as np
import pytest

from dinoscope.embed.ray_layout import Layout, pieces, plan_layout
from dinoscope.errors import ConfigError


@pytest.mark.parametrize(
    ("cpus", "gpus", "device", "workers", "expected"),
    [
        (2, 0, "auto", None, Layout("fused", 2, 1.0, 1)),  # this machine: one 1-thread actor per core
        (2, 0, "auto", 1, Layout("fused", 1, 2.0, 2)),  # one actor takes both cores as torch threads
        (8, 0, "cpu", 3, Layout("fused", 3, 2.0, 2)),  # whole cores: 2 each, 2 left to Ray's own processes
        (2, 0, "auto", 4, Layout("fused", 4, 0.5, 1)),  # more actors than cores share them
        (64, 8, "auto", None, Layout("split", 8, 1.0, 1, gpu=True)),  # one actor per GPU, decoding on CPUs
        (64, 8, "cpu", None, Layout("fused", 64, 1.0, 1)),  # --device cpu on a GPU cluster: the GPUs stay idle
        (16, 2, "cuda", 4, Layout("split", 4, 1.0, 1, gpu=True)),  # asked for CUDA: GPU actors (2 wait)
    ],
)
def test_layout_follows_the_clusters_gpus_and_cores(
    cpus: float, gpus: float, device: str, workers: int | None, expected: Layout
) -> None:
    assert plan_layout(cpus, gpus, device, workers) == expected


def test_cuda_on_a_cluster_without_gpus_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"--device cuda:1 but the Ray cluster has no GPU.*--device auto"):
        plan_layout(16, 0, "cuda:1")


def test_a_forced_split_on_cpus_leaves_a_core_to_decoding() -> None:
    layout = plan_layout(2, 0, "auto", 1, name="split")
    assert (layout.name, layout.actors, layout.actor_cpus, layout.gpu) == ("split", 1, 1.0, False)
    assert "decode tasks -> model actors" in layout.describe()
    with pytest.raises(ValueError, match="split or fused"):
        plan_layout(2, 0, name="both")


def test_pieces_keep_whole_sources_and_their_shard_number() -> None:
    sources = np.array(["a"] * 3 + ["b"] * 2 + ["c"] * 4 + ["d"] * 1)  # rows 0..9, grouped by source
    shards = [(0, np.arange(0, 5)), (7, np.arange(5, 10))]
    got = pieces(shards, sources, 3)
    assert [(k, rows.tolist()) for k, rows in got] == [(0, [0, 1, 2]), (0, [3, 4]), (7, [5, 6, 7, 8]), (7, [9])]
    assert np.concatenate([r for _, r in got]).tolist() == list(range(10))
