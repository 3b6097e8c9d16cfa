"""The offline HTML page of one ``dinoscope search``: the query and its results as thumbnails, self-contained.

Thumbnails are cut from each result's source image (one decode per file, JPEG draft mode) and inlined as
base64 JPEGs, so the page opens from disk with no other file. Video frames have no thumbnail here (their
row still shows source, frame and box).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["THUMB_PX", "write_search_page"]

#: Long side of each thumbnail.
THUMB_PX = 160

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}h1{font-size:1.2rem}
.grid{display:flex;flex-wrap:wrap;gap:.8rem}.hit{width:180px;font-size:.75rem;word-break:break-all}
.hit img,.query img{max-width:160px;max-height:160px;display:block;border:1px solid #ccc}
.sim{font-weight:600}.meta{color:#666}
"""


def write_search_page(
    path: Path,
    query: str,
    hits: pd.DataFrame,
    root: Path | None,
    *,
    query_image: tuple[Path, tuple[float, float, float, float] | None] | None = None,
    index_info: dict[str, Any] | None = None,
) -> Path:
    """Write the page of one search.

    Args:
        path: The ``.html`` file (in the run's ``searches/`` room).
        query: Description of the query.
        hits: Results (``rank, similarity, object_id, class_name, split, source, frame, label_ref, x1..y2``).
        root: Folder the ``source`` paths are relative to (the dataset root), None when they are absolute.
        query_image: The query image file and its box, shown first (None for an object query).
        index_info: The index's info (kind, rows), shown in the footer.

    Returns:
        ``path``.

    Example:
        >>> write_search_page(Path("runs/ppe/searches/q.html"), "q.jpg", hits, Path("data/ppe"))  # doctest: +SKIP
    """
    cells = []
    if query_image is not None:
        img = _thumb(query_image[0], query_image[1])
        cells.append(f'<div class="hit query">{img}<div class="sim">query</div>{html.escape(query)}</div>')
    for hit in hits.itertuples(index=False):
        source = Path(str(hit.source)) if root is None else Path(root) / str(hit.source)
        img = _thumb(source, (hit.x1, hit.y1, hit.x2, hit.y2)) if int(hit.frame) < 0 else "<div>(video frame)</div>"
        ref = html.escape(str(hit.label_ref or hit.source))
        cells.append(
            f'<div class="hit">{img}<div class="sim">#{hit.rank} · {hit.similarity:.3f}</div>'
            f"<div>{html.escape(str(hit.class_name) or '(unlabelled)')} · {html.escape(str(hit.split))}</div>"
            f'<div class="meta">{ref}</div><div class="meta">{html.escape(str(hit.object_id))}</div></div>'
        )
    info = index_info or {}
    footer = f"index: {info.get('kind', '?')} over {info.get('n_rows', len(hits)):,} objects"
    body = (
        f"<h1>Objects most similar to {html.escape(query)}</h1><div class='grid'>{''.join(cells)}</div>"
        f"<p class='meta'>{html.escape(footer)}</p>"
    )
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>dinoscope search</title><style>{_STYLE}</style>"
    path.write_text(page + f"</head><body>{body}</body></html>", encoding="utf-8")
    return path


def _thumb(source: Path, box: tuple[float, float, float, float] | None) -> str:
    """An ``<img>`` of the box of ``source`` (base64 JPEG), or a note when the file cannot be read."""
    from PIL import Image

    from dinoscope.errors import DinoscopeError
    from dinoscope.io.images import read_image

    try:
        image = read_image(source)
    except DinoscopeError:
        return f"<div class='meta'>(unreadable: {html.escape(source.name)})</div>"
    h, w = image.shape[:2]
    if box is not None:
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, max(x2, x1 + 1)), min(h, max(y2, y1 + 1))
        image = image[y1:y2, x1:x2]
    crop = Image.fromarray(image)
    crop.thumbnail((THUMB_PX, THUMB_PX))
    buf = io.BytesIO()
    crop.convert("RGB").save(buf, format="JPEG", quality=80)
    return f'<img alt="" src="data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}">'
