"""``--engine ray`` without Ray installed: one line naming the extra and the alternative."""

from __future__ import annotations

import builtins

import pytest

from dinoscope.embed.ray_engine import connect
from dinoscope.errors import MissingDependencyError


def test_missing_ray_names_the_extra_and_the_local_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_ray(name: str, *args: object, **kwargs: object) -> object:
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    monkeypatch.delitem(__import__("sys").modules, "ray", raising=False)
    with pytest.raises(MissingDependencyError, match=r"dinoscope\[ray\].*--engine local"):
        connect(None)
