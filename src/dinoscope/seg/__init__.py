"""Segmentation of cracks and defects: export import, splits, U-Net training, sliding-window prediction, scores.

A stand-alone floor-5 tool (beside report/, patches/, video/): formats are read in :mod:`dinoscope.io`
(:mod:`~dinoscope.io.seg_exports`, :mod:`~dinoscope.io.cvat`), models run through :mod:`dinoscope.embed`'s
runtime, and :mod:`dinoscope.workflows.seg` is the entry point (``seg_import``, ``seg_prepare``, ``seg_train``,
``seg_predict``, ``seg_eval``, ``seg_collect``). Modules: ``config`` (option groups and configs), ``data``
(the images/ + masks/ + splits/ folder), ``importer``, ``prepare`` + ``splits``, ``model`` + ``vit_decoder``,
``augment`` + ``train`` + ``distributed``, ``infer``, ``predict``, ``metrics`` + ``evaluate``, ``collect`` +
``roi`` + ``collect_window`` + ``display`` (the interactive window).
Importing this package loads nothing heavy.

Example:
    >>> from dinoscope.workflows.seg import seg_train  # doctest: +SKIP
    >>> seg_train(data="data/cracks", out="models/cracks").best_dice  # doctest: +SKIP
"""
