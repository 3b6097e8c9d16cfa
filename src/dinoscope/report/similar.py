"""The "similar objects" of the report's inspector: each shipped object's nearest objects, shipped with it.

The report is offline, so it cannot search when a user clicks: for every object a class data file ships, its
:data:`SIMILAR_K` nearest objects of the whole run come from the run's persistent index
(:func:`~dinoscope.analysis.search_index.open_index`, the one ``dinoscope search`` uses; built here if the run
has none yet). A neighbour that the report ships too is a clickable thumbnail (its ``class:index`` ref and
thumbnail cell); any other is listed by its label reference (``file:line``) and similarity.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from dinoscope.errors import DinoscopeError

if TYPE_CHECKING:
    from dinoscope.report.view import View

__all__ = ["SIMILAR_K", "similar_objects"]

logger = logging.getLogger(__name__)

#: Neighbours shipped per object for the inspector's "similar objects".
SIMILAR_K = 8


def similar_objects(view: View, k: int = SIMILAR_K) -> dict[int, list[list[list[Any]]]]:
    """Per class, per object of its data file (``plan.objs`` order): ``k`` neighbours as
    ``[class, index in that class's file (-1: not shipped), thumbnail cell, similarity, label reference]``.

    Returns {} when the run has no vector store or FAISS is missing (the inspector then shows no action).

    Example:
        >>> nn = similar_objects(view)  # doctest: +SKIP
        >>> nn[0][0][0]  # doctest: +SKIP
        [0, 12, 40, 0.973, 'train/labels/img1.txt:3']
    """
    from dinoscope.analysis.search_index import open_index
    from dinoscope.embed.store import EmbeddingStore
    from dinoscope.run import Run

    classes = view.plan.classes
    shipped = np.unique(np.concatenate([p.objs for p in classes])) if classes else np.empty(0, np.int64)
    if not len(shipped):
        return {}
    try:
        run = Run.open(view.data.run_dir)
        name = run.store_name(view.data.summary.get("store"))
        store = EmbeddingStore.open(run.embeddings_dir, name)
        index = open_index(run, name)
    except (DinoscopeError, ImportError) as exc:
        logger.warning("report: no similar objects in the inspector (%s)", exc)
        return {}
    objects = view.data.objects
    ids = objects["object_id"].astype(str).to_numpy()
    store_rows = store.rows_of(ids[shipped])
    found, sims = index.search(store.vectors[store_rows], k, exclude_rows=store_rows)
    row_of_id = {oid: r for r, oid in enumerate(ids)}
    refs = objects["label_ref"].astype(str).to_numpy() if "label_ref" in objects else np.full(len(ids), "")
    store_ids = store.object_ids
    neighbours: dict[int, list[list[Any]]] = {}
    for i, row in enumerate(shipped.tolist()):
        out = []
        for s_row, sim in zip(found[i].tolist(), sims[i].tolist(), strict=True):
            if s_row < 0:
                continue
            r = row_of_id.get(str(store_ids[s_row]))
            if r is None:  # an object the analysis left out
                continue
            c, at = (int(v) for v in view.ref(r).split(":"))
            cell = view.images.cell[r][1] if r in view.images.cell else -1
            out.append([c, at, int(cell), round(float(sim), 3), refs[r] or str(ids[r])])
        neighbours[row] = out
    return {c: [neighbours[int(r)] for r in p.objs.tolist()] for c, p in enumerate(classes)}
