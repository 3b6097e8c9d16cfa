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
