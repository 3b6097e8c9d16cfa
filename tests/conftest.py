"""Shared fixtures: paths to ../shared data (skipped with a reason when absent)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _shared(rel: str) -> Path:
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"../shared/{rel} is not available (tests read the team's shared data beside the repo)")
    return path


@pytest.fixture(scope="session")
def cracks_dir() -> Path:
    """../shared/data/cracks-uav75: 512 px crack images + 0/255 masks, train 50 / val 10 (GPL-3.0: by path only)."""
    return _shared("data/cracks-uav75")


@pytest.fixture(scope="session")
def ppe_dir() -> Path:
    """../shared/data/ppe-hardhat-vest: 909 images, 4 classes, YOLO."""
    return _shared("data/ppe-hardhat-vest")


@pytest.fixture(scope="session")
def deeppcb_dir() -> Path:
    """../shared/data/deeppcb: 311 PCB images, 6 defect classes, YOLO + OK/defect JSON."""
    return _shared("data/deeppcb")


@pytest.fixture(scope="session")
def bottle_video() -> Path:
    """../shared/data/videos/bottle-detection.mp4: 640x360, 1189 frames, 29.8 fps."""
    return _shared("data/videos/bottle-detection.mp4")


@pytest.fixture(autouse=True, scope="session")
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test reads or writes the user's caches, and nothing may reach the network."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DINOSCOPE_CACHE", str(tmp_path_factory.mktemp("dinoscope-cache")))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("DINOSCOPE_NO_PROGRESS", "1")
    yield
    mp.undo()


#: CPU flags of the two kinds of x86 machines the suite must pass on.
CPU_KINDS = {
    "avx2": frozenset({"sse4_2", "avx", "avx2", "fma"}),
    "bf16": frozenset({"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
}


@pytest.fixture
def cpu_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Pretend the CPU is of a kind: ``avx2`` (``--precision auto`` -> fp32) or ``bf16`` (AVX512-BF16 and AMX:
    ``auto`` -> bf16), by mocking the capability detection (:func:`dinoscope.embed.runtime.cpu_flags`).

    Not autouse: a test asks for it, parametrised with ``indirect=True`` (default ``avx2``).
    """
    kind = getattr(request, "param", "avx2")
    monkeypatch.setattr("dinoscope.embed.runtime.cpu_flags", lambda *_: CPU_KINDS[kind])
    return kind


@pytest.fixture(scope="session")
def real_deeppcb(deeppcb_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """(DeepPCB boxes merged into two classes, (N,) original type, (N, 1280) EfficientNet-Lite0 fp32 vectors).

    The boxes are those of ``read_dataset(deeppcb)`` in order, so the vectors also serve
    :func:`tests.realdata.deeppcb_flipped` (same rows, other labels). Embedding takes ~2 min on 2 cores.
    """
    from tests import realdata

    table, truth = realdata.deeppcb_merged(deeppcb_dir)
    return table, truth, realdata.vectors_of(table, tmp_path_factory.mktemp("real-deeppcb"))


@pytest.fixture(scope="session")
def real_ppe(ppe_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """(PPE whole images, (N,) copy-group id (-1: not in the truth), (N, 1280) vectors); ~1 min on 2 cores."""
    from tests import realdata

    table, groups = realdata.ppe_whole_images(ppe_dir)
    return table, groups, realdata.vectors_of(table, tmp_path_factory.mktemp("real-ppe"))
