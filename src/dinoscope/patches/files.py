"""The PCA file: a JSON that ``render`` reads, plus a ``.stats.npz`` sidecar that makes ``merge`` exact.

``pca.json`` holds what rendering needs and what people read: the components, mean, explained variance
(and ratio), the foreground direction, the model spec and a ``configuration`` block. The sufficient
statistics (float64 count, mean and D x D scatter of all patches, and of both sides of the foreground split)
go to ``pca.stats.npz`` beside it, named in the JSON with its BLAKE2b hash: at D = 1024 one scatter matrix is
a million numbers (about 20 MB as JSON text, 8 MB as binary), and binary float64 keeps ``merge`` bit-exact.
The subject and clip names are stored there too, so merged counts of unique subjects and clips are exact.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dinoscope._version import __version__
from dinoscope.errors import ConfigError, DatasetFormatError
from dinoscope.io._output import prepare_output_files
from dinoscope.io.images import hash_file
from dinoscope.patches.pca import ForegroundSplit, PatchPCA
from dinoscope.patches.stats import PatchStatistics

__all__ = ["FORMAT", "PatchPCAFit", "merge_fits", "read_pca_file", "sidecar_path", "write_pca_file"]

FORMAT = "dinoscope.patch-pca"
_VERSION = 1
#: configuration keys that must agree for two fits to merge (they change the patch features)
_MERGE_KEYS = ("model_key", "image_size", "resize", "grid_size", "embed_dim")


@dataclass
class PatchPCAFit:
    """A fitted patch PCA with everything needed to render it, merge it and know where it came from.

    Attributes:
        pca: The components (fitted on the foreground patches in foreground mode).
        statistics: Statistics of all patches (None when read without the sidecar).
        foreground: The foreground split, or None.
        configuration: Sizes, counts, sampling settings, timestamp and version (see docs/patches.md).
        model: The backend's :class:`~dinoscope.embed.spec.ModelSpec` as a dict.
        subjects: Sorted unique subject names (from the sidecar; [] when read without it).
        clips: Sorted unique clip names (likewise).
        path: The JSON file it was read from or written to.
    """

    pca: PatchPCA
    statistics: PatchStatistics | None
    foreground: ForegroundSplit | None
    configuration: dict[str, Any]
    model: dict[str, Any]
    subjects: list[str] = field(default_factory=list)
    clips: list[str] = field(default_factory=list)
    path: Path | None = None

    @property
    def embed_dim(self) -> int:
        """Feature dimension D of the patches."""
        return int(self.pca.mean_.shape[0])


def sidecar_path(path: Path) -> Path:
    """``pca.json`` -> ``pca.stats.npz``."""
    return path.with_name(path.stem + ".stats.npz")


def write_pca_file(fit: PatchPCAFit, path: str | Path, overwrite: bool = False) -> Path:
    """Write the JSON and its statistics sidecar (each atomically: temporary file, then rename).

    Raises:
        OutputExistsError: A file exists and ``overwrite`` is False.

    Example:
        >>> write_pca_file(fit, "pca.json")  # doctest: +SKIP
        PosixPath('pca.json')
    """
    path = Path(path)
    side = sidecar_path(path)
    prepare_output_files(path.parent, [path.name, side.name], overwrite=overwrite)
    if fit.statistics is None:
        raise ValueError("cannot write a PCA file without its statistics (read it with statistics=True)")
    arrays = {**fit.statistics.to_arrays("all"), "subjects": np.asarray(fit.subjects, dtype=str)}
    arrays["clips"] = np.asarray(fit.clips, dtype=str)
    if fit.foreground is not None:
        arrays.update(fit.foreground.above.to_arrays("above"))
        arrays.update(fit.foreground.below.to_arrays("below"))
    tmp = side.with_name(side.name + ".tmp")
    with tmp.open("wb") as fh:
        np.savez(fh, **arrays)
    digest = hash_file(tmp)
    tmp.replace(side)
    doc = _document(fit, side.name, digest)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(_dumps(doc), encoding="utf-8")
    tmp.replace(path)
    fit.path = path
    return path


def _document(fit: PatchPCAFit, sidecar: str, digest: str) -> dict[str, Any]:
    pca = fit.pca
    return {
        "format": FORMAT,
        "format_version": _VERSION,
        "n_components": int(pca.components_.shape[0]),
        "components": pca.components_.tolist(),
        "mean": pca.mean_.tolist(),
        "explained_variance": pca.explained_variance_.tolist(),
        "explained_variance_ratio": pca.explained_variance_ratio_.tolist(),
        "n_samples": int(pca.n_samples_seen_),
        "foreground": None if fit.foreground is None else fit.foreground.summary(),
        "configuration": fit.configuration,
        "model": fit.model,
        "statistics": {
            "file": sidecar,
            "blake2b": digest,
            "content": "float64 n/mean/scatter of all patches (all_*) and of both foreground sides (above_*, "
            "below_*); scatter = sum of outer products about the mean, combined with Chan et al.'s pairwise "
            "update; subjects and clips names",
        },
    }


def _dumps(doc: dict[str, Any]) -> str:
    """Top-level keys one per line, dicts indented, long arrays on one line each."""
    lines = []
    for key, value in doc.items():
        text = json.dumps(value, indent=2) if isinstance(value, dict) and key != "foreground" else json.dumps(value)
        lines.append(f"  {json.dumps(key)}: {text.replace(chr(10), chr(10) + '  ')}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def read_pca_file(path: str | Path, statistics: bool = False) -> PatchPCAFit:
    """Read a PCA JSON (and, with ``statistics``, its sidecar, checking its hash).

    Raises:
        DatasetFormatError: Missing or invalid file, or a sidecar that is missing or does not match.

    Example:
        >>> fit = read_pca_file("pca.json")  # doctest: +SKIP
        >>> fit.pca.components_.shape  # doctest: +SKIP
        (8, 384)
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetFormatError(f"{path}: PCA file not found (write one with `dinoscope patches fit`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetFormatError(f"{path}: not a readable JSON file ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DatasetFormatError(f'{path}: not a dinoscope patch-PCA file (expected "format": "{FORMAT}")')
    try:
        pca = PatchPCA(int(doc["n_components"]))
        pca.components_ = np.asarray(doc["components"], dtype=np.float64)
        pca.mean_ = np.asarray(doc["mean"], dtype=np.float64)
        pca.explained_variance_ = np.asarray(doc["explained_variance"], dtype=np.float64)
        pca.explained_variance_ratio_ = np.asarray(doc["explained_variance_ratio"], dtype=np.float64)
        pca.n_samples_seen_ = int(doc["n_samples"])
        configuration, model = dict(doc["configuration"]), dict(doc["model"])
        fg_doc = doc["foreground"]
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetFormatError(f"{path}: invalid patch-PCA file (bad or missing {exc})") from exc
    if pca.components_.ndim != 2 or pca.components_.shape[1] != pca.mean_.shape[0]:
        raise DatasetFormatError(
            f"{path}: components {pca.components_.shape} do not match the mean {pca.mean_.shape}; the file is damaged"
        )
    fit = PatchPCAFit(pca, None, None, configuration, model, path=path)
    arrays = _read_sidecar(path, doc) if statistics else None
    if arrays is not None:
        fit.statistics = PatchStatistics.from_arrays(arrays, "all", sidecar_path(path))
        fit.subjects, fit.clips = [str(s) for s in arrays["subjects"]], [str(c) for c in arrays["clips"]]
        pca.statistics_ = fit.statistics
    if fg_doc is not None:
        fit.foreground = _foreground(fg_doc, arrays, path)
        if arrays is not None:
            pca.statistics_ = fit.foreground.foreground
    return fit


def _foreground(fg: dict[str, Any], arrays: Any, path: Path) -> ForegroundSplit:
    dim = len(fg["mean"])
    above = PatchStatistics.from_arrays(arrays, "above", path) if arrays is not None else PatchStatistics.empty(dim)
    below = PatchStatistics.from_arrays(arrays, "below", path) if arrays is not None else PatchStatistics.empty(dim)
    split = ForegroundSplit(
        mean=np.asarray(fg["mean"], dtype=np.float64),
        direction=np.asarray(fg["direction"], dtype=np.float64),
        threshold=float(fg["threshold"]),
        threshold_sigma=float(fg["threshold_sigma"]),
        above=above,
        below=below,
        n_border_above=int(fg["n_border_above"]),
        n_border_below=int(fg["n_border_below"]),
        direction_from=str(fg.get("direction_from", "first pass")),
        side=None if arrays is not None else ("above" if fg["side"] == "above" else "below"),
    )
    return split


def _read_sidecar(path: Path, doc: dict[str, Any]) -> Any:
    info = doc.get("statistics") or {}
    side = path.with_name(str(info.get("file", sidecar_path(path).name)))
    if not side.is_file():
        raise DatasetFormatError(
            f"{path}: its statistics file {side} is missing; keep the .stats.npz beside the JSON (merge needs it)"
        )
    if info.get("blake2b") and hash_file(side) != info["blake2b"]:
        raise DatasetFormatError(
            f"{side}: does not belong to {path} (its hash differs from the one recorded); copy both files together"
        )
    try:
        with np.load(side, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise DatasetFormatError(f"{side}: cannot read the statistics ({exc})") from exc


def merge_fits(fits: list[PatchPCAFit], n_components: int | None = None, drop_foreground: bool = False) -> PatchPCAFit:
    """The fit of the union of the fits' patches, exactly (their statistics are combined).

    In foreground mode the fits must share the foreground direction and threshold (fit them with the same
    ``--foreground-from`` file); otherwise their foreground statistics describe different splits and cannot
    be combined, and the merge is refused unless ``drop_foreground`` keeps only the all-patch PCA.

    Args:
        fits: Fits read with ``statistics=True``.
        n_components: Components of the result (default: the first fit's).
        drop_foreground: Merge the all-patch statistics only and leave foreground mode.

    Raises:
        ConfigError: The fits used different models, sizes or preprocessing, or incompatible foreground splits.

    Example:
        >>> merged = merge_fits([read_pca_file(p, statistics=True) for p in ("a.json", "b.json")])  # doctest: +SKIP
    """
    if not fits:
        raise ValueError("merge needs at least one fit")
    names = [str(f.path or f"fit {i}") for i, f in enumerate(fits)]
    first = fits[0]
    for fit, name in zip(fits[1:], names[1:], strict=True):
        for key in _MERGE_KEYS:
            if fit.configuration.get(key) != first.configuration.get(key):
                raise ConfigError(
                    f"cannot merge {names[0]} and {name}: {key} differs ({first.configuration.get(key)!r} vs "
                    f"{fit.configuration.get(key)!r}); merge only fits of the same model, image size and resize mode"
                )
    if any(f.statistics is None for f in fits):
        raise ValueError("merge_fits needs fits read with statistics=True")
    stats = first.statistics
    for fit in fits[1:]:
        stats = stats.merge(fit.statistics)  # type: ignore[union-attr,arg-type]
    split = None if drop_foreground else _merge_foreground(fits, names)
    k = n_components or int(first.pca.components_.shape[0])
    if not 1 <= k <= stats.dim:  # type: ignore[union-attr]
        raise ConfigError(f"--components {k}: must be between 1 and the feature dimension {stats.dim}")  # type: ignore[union-attr]
    pca = PatchPCA(k).fit_statistics(split.foreground if split is not None else stats)  # type: ignore[arg-type]
    subjects = sorted({s for f in fits for s in f.subjects})
    clips = sorted({c for f in fits for c in f.clips})
    configuration = _merged_configuration(fits, names, stats, subjects, clips, k, split)
    return replace(
        first,
        pca=pca,
        statistics=stats,
        foreground=split,
        configuration=configuration,
        subjects=subjects,
        clips=clips,
        path=None,
    )


def _merge_foreground(fits: list[PatchPCAFit], names: list[str]) -> ForegroundSplit | None:
    modes = [f.foreground is not None for f in fits]
    if not any(modes):
        return None
    if not all(modes):
        plain = names[modes.index(False)]
        raise ConfigError(
            f"cannot merge: {plain} was fitted without --foreground but {names[modes.index(True)]} with it; refit "
            "it with --foreground-from, or pass --drop-foreground to merge the all-patch PCA only"
        )
    split = fits[0].foreground
    for fit, name in zip(fits[1:], names[1:], strict=True):
        if not split.same_direction(fit.foreground):  # type: ignore[union-attr,arg-type]
            raise ConfigError(
                f"cannot merge the foreground statistics of {names[0]} and {name}: they were split along different "
                "first components, so their foreground sets are not comparable. Merge the fits with "
                "--drop-foreground, then refit each part with --foreground-from <merged.json> and merge those; "
                "or pass --drop-foreground to keep the all-patch PCA only"
            )
        split = split.merge(fit.foreground)  # type: ignore[union-attr,arg-type]
    return split


def _merged_configuration(
    fits: list[PatchPCAFit],
    names: list[str],
    stats: PatchStatistics,
    subjects: list[str],
    clips: list[str],
    n_components: int,
    split: ForegroundSplit | None,
) -> dict[str, Any]:
    config = dict(fits[0].configuration)
    config.update(
        total_patches=int(stats.n),
        total_frames=int(sum(f.configuration.get("total_frames", 0) for f in fits)),
        unique_subjects=sum(1 for s in subjects if s),
        unique_clips=len(clips),
        pca_components=n_components,
        foreground=split is not None,
        source=[f.configuration.get("source") for f in fits],
        merged_from=names,
        timestamp=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        dinoscope_version=__version__,
    )
    if split is None:
        config.update(foreground_threshold_sigma=None, foreground_from=None)
    for key in ("seconds", "patches_per_s", "peak_rss_mb"):
        config.pop(key, None)
    return config
