"""``embed --engine ray`` on a local 2-CPU Ray: the local engine's vectors, rows aligned, shards resumed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")
transformers = pytest.importorskip("transformers")

from dinoscope.embed import ray_engine  # noqa: E402
from dinoscope.embed.ray_engine import ModelRecipe, embed_table_ray, shard_rows  # noqa: E402
from dinoscope.embed.store import EmbeddingStore  # noqa: E402
from dinoscope.io.yolo import read_yolo  # noqa: E402
from dinoscope.workflows.embed import embed  # noqa: E402
from tests.embed.test_engine import _dataset  # noqa: E402

pytestmark = pytest.mark.slow  # a local Ray starts in ~10 s and its workers import torch


@pytest.fixture(scope="module")
def ray_local():
    ray = ray_engine.connect(None)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny_dinov2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.manual_seed(0)
    cfg = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, patch_size=14)
    folder = tmp_path_factory.mktemp("dinov2")
    transformers.Dinov2Model(cfg).save_pretrained(folder)
    transformers.BitImageProcessor(crop_size={"height": 56, "width": 56}).save_pretrained(folder)
    return folder


def test_shards_hold_whole_sources_in_source_order(tmp_path: Path) -> None:
    table = read_yolo(_dataset(tmp_path / "ds", 5))  # 3 objects per image
    shards = shard_rows(table, 4)
    assert [len(s) for s in shards] == [6, 6, 3]
    assert sorted(np.concatenate(shards).tolist()) == list(range(15))
    sources = table.data["source"].to_numpy()
    assert all(len(set(sources[s])) == len(s) // 3 for s in shards)


def test_ray_gives_the_local_engines_vectors_and_resumes_by_shard(
    tmp_path: Path, ray_local, tiny_dinov2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = _dataset(tmp_path / "ds", 6)
    monkeypatch.setattr(ray_engine, "SHARD_OBJECTS", 4)
    common = dict(dataset=ds, model=str(tiny_dinov2), precision="fp32", device="cpu", no_cache=True)
    local = embed(out=tmp_path / "local", workers=0, **common)
    remote = embed(out=tmp_path / "ray", engine="ray", workers=2, **common)
    a = EmbeddingStore.open(tmp_path / "local/embeddings").as_array()
    b = EmbeddingStore.open(tmp_path / "ray/embeddings")
    ok = b.valid_mask()
    assert ok.tolist() == EmbeddingStore.open(tmp_path / "local/embeddings").valid_mask().tolist()
    assert ok.all() and remote.stats.n_computed == local.stats.n_computed == 18
    cos = (a * b.as_array()).sum(axis=1)
    assert cos.min() >= 0.9999, cos.min()  # precision="fp32"

    assert remote.stats.split.startswith("fused: 2 actors")  # CPU only: actors decode, crop and embed

    # resume: a fresh store beside the shard files takes them; a lost shard is computed again (its image now
    # unreadable: its rows are marked failed, named by file), the others are not sent to Ray. It runs the split
    # layout of a GPU cluster (decode tasks -> model actor) on the CPUs: the same vectors either way
    monkeypatch.setattr(ray_engine, "LAYOUT", "split")
    shard_dir = tmp_path / "ray/embeddings" / f"{remote.store_path.stem}.shards"
    files = sorted(shard_dir.glob("*.npz"))
    assert len(files) == 3  # 18 objects, 6 images of 3, shards of >= 4 objects: 6, 6, 6
    lost = np.load(files[1])["row"]
    files[1].unlink()
    table = read_yolo(ds)
    bad = table.data["source"].to_numpy()[lost[0]]
    (ds / bad).write_bytes(b"not an image any more")
    store = EmbeddingStore.create(tmp_path / "again", "s", list(table.object_id), 32, {})
    stats = embed_table_ray(
        table,
        ModelRecipe(str(tiny_dinov2), precision="fp32", device="cpu"),
        store,
        spec=remote.spec,
        shard_dir=shard_dir,
        workers=1,
    )
    assert (stats.n_computed, stats.n_failed, stats.n_resumed) == (3, 3, 12) and bad in stats.failures
    assert stats.split.startswith("split: 1 actors")
    done = store.valid_mask()
    assert done.sum() == 15 and not done[table.data["source"].to_numpy() == bad].any()
    np.testing.assert_allclose(store.as_array()[done], b.as_array()[done], atol=1e-6)
