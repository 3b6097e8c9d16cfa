from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dinoscope.cli.main import app
from dinoscope.embed.registry import _REGISTRY, register_model
from dinoscope.embed.store import EmbeddingStore
from dinoscope.table import ObjectTable
from dinoscope.workflows.embed import embed
from tests.embed.test_engine import _dataset

runner = CliRunner()


@pytest.fixture(autouse=True)
def tiny_model():
    register_model("tiny-cnn", "tests.embed.fakes:create_tiny", "seed0", "test model")
    yield
    _REGISTRY.pop("tiny-cnn", None)


def test_embed_writes_a_complete_run_directory(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds", 3)
    result = embed(dataset=ds, out=tmp_path / "run", model="tiny-cnn", cache_dir=tmp_path / "cache", workers=0)
    run = tmp_path / "run"
    table = ObjectTable.read_parquet(run / "objects.parquet")
    store = EmbeddingStore.open(run / "embeddings")
    assert list(store.object_ids) == list(table.object_id) and store.n_done == len(table) == 9
    np.testing.assert_allclose(np.linalg.norm(store.as_array(), axis=1), 1.0, atol=1e-5)
    doc = yaml.safe_load((run / "run.yaml").read_text())
    assert doc["embedding"]["model"]["name"] == "tiny-cnn" and doc["embedding"]["crop"]["policy"] == "pad"
    assert doc["embed_stats"]["n_computed"] == 9 and doc["dinoscope"]["versions"]["torch"]
    assert result.store_path.is_file()


def test_existing_run_is_refused_then_resumed_or_overwritten(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds", 2)
    args = [
        "embed",
        str(ds),
        "--out",
        str(tmp_path / "run"),
        "--model",
        "tiny-cnn",
        "--workers",
        "0",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    assert runner.invoke(app, args).exit_code == 0
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1 and "--resume" in refused.stderr and "--overwrite" in refused.stderr
    resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0 and "6 already done" in resumed.stdout
    again = runner.invoke(app, [*args, "--overwrite"])
    assert again.exit_code == 0 and "6 from cache" in again.stdout


def test_whole_images_mode_embeds_one_object_per_image(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds", 3)
    embed(dataset=ds, out=tmp_path / "run", model="tiny-cnn", whole_images=True, no_cache=True, workers=0)
    table = ObjectTable.read_parquet(tmp_path / "run" / "objects.parquet")
    assert len(table) == 3 and (table.data["origin"] == "image").all()


def test_unknown_model_and_bad_option_are_one_line_errors(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds", 1)
    out = runner.invoke(app, ["embed", str(ds), "--out", str(tmp_path / "r"), "--model", "dinov3-huge"])
    assert out.exit_code == 1 and "unknown model 'dinov3-huge'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    bad = runner.invoke(app, ["embed", str(ds), "--out", str(tmp_path / "r2"), "--crop", "zoom"])
    assert bad.exit_code == 1 and "'crop'" in bad.stderr


def test_models_lists_the_registry() -> None:
    out = runner.invoke(app, ["models", "*efficientnet*"])
    assert out.exit_code == 0 and "efficientnet-lite0" in out.stdout and "dinov2" not in out.stdout


def test_cache_info_and_prune_commands(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds", 2)
    embed(dataset=ds, out=tmp_path / "run", model="tiny-cnn", cache_dir=tmp_path / "cache", workers=0)
    (tmp_path / "cache" / "keep-me.txt").write_text("not dinoscope's")
    info = runner.invoke(app, ["cache", "info", "--cache-dir", str(tmp_path / "cache")])
    assert info.exit_code == 0 and "tiny-cnn" in info.stdout and " 6 " in info.stdout
    pruned = runner.invoke(app, ["cache", "prune", "--cache-dir", str(tmp_path / "cache"), "--max-mb", "0"])
    assert pruned.exit_code == 0 and "removed 6 cache entries" in pruned.stdout
    assert (tmp_path / "cache" / "keep-me.txt").read_text() == "not dinoscope's"
