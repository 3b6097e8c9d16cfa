"""The public runtime: the ``auto`` device/precision rule on both kinds of CPU and on CUDA (capability detection
mocked), the forward context, batch sizing, out-of-memory back-off and throughput reporting."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from dinoscope.embed import runtime
from dinoscope.embed.runtime import (
    ChunkedForward,
    choose_batch_size,
    cpu_flags,
    cpu_has_native_bf16,
    decode_workers,
    device_type_of,
    forward_context,
    place_backend,
    resolve_device,
    resolve_precision,
)
from dinoscope.embed.runtime_stats import measure_throughput, memory_status, peak_rss_mb, rss_mb
from dinoscope.errors import BackendError
from tests.embed.fakes import TinyCNN

CROPS = np.random.default_rng(0).integers(0, 255, (10, 32, 32, 3), dtype=np.uint8)


# --- the auto rule -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cpu_kind", "expected"), [("avx2", "fp32"), ("bf16", "bf16")], indirect=["cpu_kind"])
def test_auto_precision_follows_the_cpu_kind(cpu_kind: str, expected: str) -> None:
    assert cpu_has_native_bf16() is (cpu_kind == "bf16")
    assert resolve_precision("auto", "cpu") == expected
    assert resolve_precision("fp32", "cpu") == "fp32"  # a stated precision holds on every CPU
    assert resolve_precision("auto", "mps") == "fp32"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx2", "fma"}, "fp32"),
        ({"avx2", "avx512f", "avx512_bf16"}, "bf16"),
        ({"avx2", "amx_bf16", "amx_tile"}, "bf16"),
        (set(), "fp32"),  # /proc/cpuinfo unreadable (macOS, Windows): fp32
    ],
)
def test_auto_precision_needs_native_bf16_on_cpus(
    flags: set[str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "cpu_flags", lambda *_: frozenset(flags))
    assert resolve_precision("auto", "cpu") == expected


@pytest.mark.parametrize(("bf16", "expected"), [(True, "bf16"), (False, "fp16")])
def test_auto_precision_on_cuda(bf16: bool, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "cuda_supports_bf16", lambda: bf16)
    monkeypatch.setattr(runtime, "cpu_flags", lambda *_: frozenset())  # the CPU does not matter on a GPU
    assert resolve_precision("auto", "cuda") == expected
    assert resolve_precision("fp32", "cuda") == "fp32"


def test_explicit_precisions(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dinoscope.embed.runtime"):
        assert resolve_precision("fp16", "cpu") == "bf16"
    assert "fp16 is slow or unsupported on CPUs" in caplog.text
    assert resolve_precision("fp16", "cuda") == "fp16" and resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="fp32, bf16 or fp16; got 'fp64'"):
        resolve_precision("fp64", "cpu")


def test_cpu_flags_are_read_from_the_flags_line(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Xeon avx512_bf16 in a name\nflags\t\t: fpu sse avx2 amx_bf16\n\n")
    assert cpu_flags(info) == {"fpu", "sse", "avx2", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_devices() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="use --device cpu"):
            resolve_device("cuda:0")
    assert device_type_of(TinyCNN()) == "cpu" and device_type_of(object()) == "cpu"


@pytest.mark.parametrize(("cpu_kind", "expected"), [("avx2", "fp32"), ("bf16", "bf16")], indirect=["cpu_kind"])
def test_backends_placed_with_auto_compute_in_the_chosen_precision(cpu_kind: str, expected: str) -> None:
    reference = TinyCNN().embed(CROPS).numpy()  # a backend never placed computes in fp32
    backend = TinyCNN()
    assert place_backend(backend, "cpu", "auto") is backend and backend.precision == expected
    got = backend.embed(CROPS).numpy()
    if expected == "fp32":
        np.testing.assert_allclose(got, reference, atol=1e-6)
    else:  # bf16 keeps 8 significant bits: about 2-3 decimal digits
        assert not np.allclose(got, reference, atol=1e-5)
        np.testing.assert_allclose(got, reference, rtol=3e-2, atol=3e-2)
    explicit = place_backend(TinyCNN(), "cpu", "fp32")
    np.testing.assert_allclose(explicit.embed(CROPS).numpy(), reference, atol=1e-6)


def test_place_backend_leaves_backends_without_a_device_alone() -> None:
    class Session:
        spec = TinyCNN().spec

        def embed(self, images: object) -> object:
            return images

        def embed_patches(self, images: object) -> object:
            return images

    session = Session()
    assert place_backend(session, "cpu", "bf16") is session


def test_forward_context_autocasts_and_disables_gradients() -> None:
    layer = torch.nn.Linear(4, 2)
    x = torch.ones(3, 4)
    with forward_context("cpu", "bf16"):
        y = layer(x)
    assert y.dtype == torch.bfloat16 and not y.requires_grad
    with forward_context("cpu", "fp32"):
        y = layer(x)
    assert y.dtype == torch.float32 and not y.requires_grad


# --- batches ------------------------------------------------------------------------------------------------
def test_out_of_memory_halves_the_chunk_and_keeps_every_input() -> None:
    model = TinyCNN()
    sizes: list[int] = []

    def small_memory(images: torch.Tensor) -> torch.Tensor:
        sizes.append(len(images))
        if len(images) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return model.embed(images)

    forward = ChunkedForward(small_memory, chunk_size=16)
    parts = forward(torch.from_numpy(CROPS))
    assert forward.chunk_size == 2 and sizes == [10, 8, 4, 2, 2, 2, 2, 2]
    vectors = torch.cat(parts).numpy()
    assert vectors.shape == (10, 8)
    np.testing.assert_allclose(vectors, TinyCNN().embed(CROPS).numpy(), atol=1e-6)
    assert forward(CROPS[:0]) == []
    assert [len(p) for p in forward(CROPS[:5])] == [2, 2, 1]  # the lowered size is kept


def test_out_of_memory_with_one_input_is_one_clear_error() -> None:
    def no_memory(images: object) -> object:
        raise torch.OutOfMemoryError("simulated")

    with pytest.raises(BackendError, match="even with one input per batch; use --device cpu"):
        ChunkedForward(no_memory, chunk_size=4)(CROPS)


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def broken(images: np.ndarray) -> None:
        calls.append(len(images))
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        ChunkedForward(broken, chunk_size=4)(CROPS)
    assert calls == [4]
    with pytest.raises(ValueError, match="chunk_size"):
        ChunkedForward(broken, chunk_size=0)


def test_batch_size_without_cuda_needs_no_probe() -> None:
    def never(images: object) -> object:
        raise AssertionError("no probe off CUDA")

    assert choose_batch_size(never, 224, "cpu") == choose_batch_size(never, 224, "mps") == runtime.CPU_BATCH_SIZE


def test_decode_workers_follow_the_device_and_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 16)
    assert (decode_workers("cuda"), decode_workers("cpu"), decode_workers("cpu", minimum=1)) == (8, 1, 1)
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 1)
    assert (decode_workers("cuda"), decode_workers("cpu"), decode_workers("cpu", minimum=1)) == (0, 0, 1)


# --- reporting ----------------------------------------------------------------------------------------------
def test_throughput_is_measured_even_when_the_loop_fails() -> None:
    with pytest.raises(KeyboardInterrupt), measure_throughput("cpu") as meter:
        meter.n_items += 30
        raise KeyboardInterrupt
    assert meter.n_items == 30 and meter.seconds > 0 and meter.items_per_s == pytest.approx(30 / meter.seconds)
    assert meter.peak_rss_mb >= rss_mb() * 0.5 > 0 and meter.peak_gpu_mb == 0.0
    assert peak_rss_mb() > 0 and memory_status().startswith("RAM ")


# --- the suite on a bf16 CPU ---------------------------------------------------------------------------------
#: Tests that compare with fp32 references and failed on AMX/AVX512-BF16 machines while they relied on ``auto``.
NUMERIC_TESTS = [
    "tests/patches/test_fit.py::test_fit_equals_sklearn_on_the_same_patches",
    "tests/patches/test_render.py::test_render_ppe_images_with_the_offline_cnn_grid",
    "tests/video/test_video_cli.py::test_yolox_nano_on_the_bottle_video",
    "tests/video/test_video_cli.py::test_two_same_class_objects_in_one_frame_are_both_kept",
]
REPO = Path(__file__).resolve().parents[2]


class _Outcomes:
    """A pytest plugin recording the reports of a nested run."""

    def __init__(self) -> None:
        self.reports: list[pytest.TestReport] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.reports.append(report)


@pytest.mark.slow
@pytest.mark.parametrize("cpu_kind", ["bf16"], indirect=True)
@pytest.mark.parametrize("node", NUMERIC_TESTS, ids=lambda n: n.rsplit("::", 1)[1])
def test_numeric_tests_pass_where_auto_picks_bf16(node: str, cpu_kind: str) -> None:
    """Each test runs again, in this process, with the CPU detection mocked as a bf16-capable CPU."""
    assert resolve_precision("auto", "cpu") == "bf16"  # the mock reaches the code the nested test runs
    outcomes = _Outcomes()
    code = pytest.main([str(REPO / node), "-q", "-p", "no:cacheprovider"], plugins=[outcomes])
    failed = [r for r in outcomes.reports if r.failed]
    assert not failed and code == 0, "\n".join(str(r.longrepr) for r in failed) or f"exit code {code}"
    calls = [r for r in outcomes.reports if r.when in ("setup", "call")]
    if any(r.skipped for r in calls):
        pytest.skip(f"{node} was skipped (its shared data or optional dependency is missing)")
    assert [r.when for r in calls if r.passed] == ["setup", "call"]
