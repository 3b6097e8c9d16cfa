from __future__ import annotations

import subprocess
import sys


def test_import_dinoscope_imports_nothing_heavy() -> None:
    code = (
        "import sys, dinoscope; heavy = [m for m in ('torch', 'cv2', 'umap', 'av', 'pandas', 'transformers', "
        "'sklearn', 'faiss', 'timm', 'PIL') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api_resolves_lazily() -> None:
    import dinoscope

    assert callable(dinoscope.read_dataset) and dinoscope.ObjectTable.__name__ == "ObjectTable"
    assert dinoscope.__version__


def test_the_product_api_imports_and_stays_light() -> None:
    code = (
        "import sys; from dinoscope import embed, analyze, run_pipeline, build_report, create_backend, list_models; "
        "heavy = [m for m in ('torch', 'cv2', 'umap', 'av', 'transformers', 'faiss', 'timm') if m in sys.modules]; "
        "print(','.join(heavy)); print(callable(embed), analyze.__module__, run_pipeline.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, modules = out.stdout.rstrip("\n").split("\n")
    assert heavy == ""
    assert modules == "True dinoscope.workflows.analyze dinoscope.workflows.pipeline"
    import dinoscope
    import dinoscope.embed.stage

    assert callable(dinoscope.embed) and dinoscope.embed.stage is dinoscope.embed.__getattr__("stage")

    assert [m.name for m in dinoscope.list_models("efficientnet*")] == ["efficientnet-lite0"]


def test_no_module_over_400_lines() -> None:
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "dinoscope"
    long = {str(p.relative_to(src)): n for p in src.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long
