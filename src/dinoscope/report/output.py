"""The report folder's safety rule: regenerate what dinoscope wrote, never touch anything else.

A report is built in a hidden sibling folder and moved into place only when complete, so a failed build
leaves the previous report as it was. The folder then holds a marker, ``.dinoscope-report.json``, listing
every file the build wrote with its content hash. The next build:

- creates the folder when it does not exist or is empty;
- regenerates a folder holding the marker without any flag, replacing and removing only the files listed
  in it - unless one of them changed since (a reviewer filled ``label_errors_review.csv``, say), which is
  refused without ``overwrite``;
- refuses a non-empty folder without the marker unless ``overwrite``, and then still only writes its own
  files into it.

Files a user added to the folder are never deleted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dinoscope._version import __version__
from dinoscope.errors import OutputExistsError
from dinoscope.io.images import hash_file

__all__ = ["MARKER", "ReportFolder"]

logger = logging.getLogger(__name__)

MARKER = ".dinoscope-report.json"
_BUILDING = ".dinoscope-building"


@dataclass
class ReportFolder:
    """Where a report goes, and what a previous build left there.

    Attributes:
        out: The final report folder.
        previous: {relative path: hash} of the files the previous build wrote (empty when none).
        staging: The hidden sibling folder the new report is built in.
    """

    out: Path
    previous: dict[str, str] = field(default_factory=dict)
    staging: Path | None = None

    @classmethod
    def prepare(cls, out: str | Path, overwrite: bool = False) -> ReportFolder:
        """Check that ``out`` may receive a report, and open a staging folder beside it.

        Raises:
            OutputExistsError: ``out`` is a file, a non-empty folder dinoscope did not make, or a report whose
                files were edited since it was built (all named), and ``overwrite`` is False.
        """
        out = Path(out)
        previous: dict[str, str] = {}
        if out.exists() and not out.is_dir():
            raise OutputExistsError(f"{out} exists and is not a folder; choose another --out")
        marker = out / MARKER
        if marker.is_file():
            previous = json.loads(marker.read_text(encoding="utf-8")).get("files", {})
            edited = [rel for rel, h in previous.items() if (out / rel).is_file() and hash_file(out / rel) != h]
            if edited and not overwrite:
                listed = ", ".join(edited[:5]) + (f" and {len(edited) - 5} more" if len(edited) > 5 else "")
                raise OutputExistsError(
                    f"{out}: {listed} changed since the report was built (edited by someone?); move them away "
                    "or pass --overwrite to replace them"
                )
        elif out.is_dir() and any(out.iterdir()) and not overwrite:
            raise OutputExistsError(
                f"{out} exists, is not empty and was not written by `dinoscope report`; pass --overwrite to write "
                "the report into it (other files are kept) or choose another --out"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(out)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
        (staging / _BUILDING).write_text(str(os.getpid()), encoding="utf-8")
        return cls(out=out, previous=previous, staging=staging)

    @property
    def stage(self) -> Path:
        """The staging folder being written (only between :meth:`prepare` and :meth:`install`)."""
        if self.staging is None:
            raise RuntimeError("the report folder is not being built (call ReportFolder.prepare first)")
        return self.staging

    def install(self) -> dict[str, str]:
        """Move the staged report into place; remove the previous build's files that the new one lacks.

        Returns:
            {relative path: hash} of the files installed (also written to the marker).
        """
        staging = self.stage
        (staging / _BUILDING).unlink()
        files = {p.relative_to(staging).as_posix(): hash_file(p) for p in sorted(staging.rglob("*")) if p.is_file()}
        if not self.out.exists():
            staging.rename(self.out)
        else:
            for rel in self.previous:
                old = self.out / rel
                if rel not in files and old.is_file():
                    old.unlink()
            for rel in files:
                target = self.out / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                (staging / rel).replace(target)
            shutil.rmtree(staging)
            _prune_empty(self.out, {Path(r).parent for r in self.previous})
        doc = {"generator": f"dinoscope {__version__}", "files": files}
        (self.out / MARKER).write_text(json.dumps(doc, indent=1), encoding="utf-8")
        self.staging = None
        return files

    def discard(self) -> None:
        """Remove the staging folder after a failed build (the previous report is untouched)."""
        if self.staging is not None and (self.staging / _BUILDING).is_file():
            shutil.rmtree(self.staging, ignore_errors=True)
        self.staging = None


def _remove_stale_staging(out: Path) -> None:
    """Staging folders of builds that died (their process is gone); only folders holding our flag file."""
    for folder in out.parent.glob(f".{out.name}.building-*"):
        flag = folder / _BUILDING
        if not flag.is_file():
            continue
        try:
            pid = int(flag.read_text(encoding="utf-8").strip() or 0)
        except ValueError:
            pid = 0
        if pid and _alive(pid):
            continue
        logger.info("report: removing %s left by an interrupted build", folder)
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _prune_empty(out: Path, folders: set[Path]) -> None:
    """Remove folders the previous build created that are now empty (deepest first; never ``out``)."""
    for rel in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        folder = out / rel
        if rel.parts and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
