"""Every command's options are its config's keys (one spelling everywhere), and --config works the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from dinoscope.cli.main import app
from dinoscope.workflows import WORKFLOWS, workflow_config

runner = CliRunner()
#: Presentation-only options (how results are printed, not what is computed).
DISPLAY = {"check": {"as_json", "examples"}, "seg eval": {"as_json"}}


def _command(name: str):
    cmd = typer.main.get_command(app)
    for part in name.split():
        cmd = cmd.commands[part]
    return cmd


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_every_option_is_a_config_key_and_back(name: str) -> None:
    params = {p.name for p in _command(name).params}
    keys = set(workflow_config(name).model_fields)
    assert params - {"config"} - DISPLAY.get(name, set()) == keys
    assert "config" in params


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_one_spelling_per_option(name: str) -> None:
    for param in _command(name).params:
        if param.param_type_name != "option":
            continue
        long = [o for o in param.opts if o.startswith("--")]
        if param.name in DISPLAY.get(name, set()):
            continue
        assert long == ["--" + param.name.replace("_", "-")], (name, param.opts)
        if "-c" in param.opts:
            assert param.name == "config"


def test_a_field_is_declared_once() -> None:
    """No setting is declared in two places: configs only compose option groups."""
    from dinoscope.config import StrictModel

    declared: dict[str, list[str]] = {}
    for cls in _all_subclasses(StrictModel):
        for name in cls.__annotations__:
            if not name.startswith("_") and name != "model_config":
                declared.setdefault(name, []).append(f"{cls.__module__}.{cls.__qualname__}")
    twice = {k: v for k, v in declared.items() if len(v) > 1}
    assert not twice
    # The bar was 100 until session 5; adapt, select/prune/split, search and export add about 25 settings
    # (docs/architecture.md, "Workflows, option groups and the CLI"). Every new field must be one a user needs.
    assert len(declared) < 130


def _all_subclasses(cls: type) -> list[type]:
    import dinoscope.workflows as wf

    for command in wf.WORKFLOWS:
        wf.workflow_config(command)
    out, todo = [], [cls]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("dinoscope") and sub not in out:
                out.append(sub)
                todo.append(sub)
    return out


def test_config_file_and_flags_flags_win(tmp_path: Path) -> None:
    from tests.helpers import make_yolo_dataset

    ds = make_yolo_dataset(tmp_path / "ds")
    config = tmp_path / "check.yaml"
    config.write_text(yaml.safe_dump({"format": "coco", "strict": True}))
    res = runner.invoke(app, ["check", str(ds), "--config", str(config)])
    assert res.exit_code == 1 and "coco" in res.output.lower()  # the file's format is used: not a COCO dataset
    res = runner.invoke(app, ["check", str(ds), "-c", str(config), "--format", "yolo", "--no-strict", "--json"])
    assert res.exit_code == 0, res.output


def test_unknown_config_key_is_one_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"image_size": 224}))
    res = runner.invoke(app, ["embed", str(tmp_path), "-c", str(config)])
    assert res.exit_code == 1
    assert "unknown key 'image_size'" in res.output and "input_size" in res.output


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_every_command_reads_its_config_file(tmp_path: Path, name: str) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump({"not_a_setting": 1}))
    arguments = [str(tmp_path)] * len([p for p in _command(name).params if p.param_type_name == "argument"])
    res = runner.invoke(app, [*name.split(), *arguments, "--config", str(config)])
    assert res.exit_code == 1, res.output
    assert "unknown key 'not_a_setting'" in res.stderr and "Allowed keys" in res.stderr


def test_every_command_spells_its_options_after_their_names() -> None:
    """Utility commands too (models, cache): `--cache-dir` everywhere, `-c` only ever `--config`."""

    def walk(cmd, path=()):
        subs = getattr(cmd, "commands", {})
        if not subs:
            yield " ".join(path), cmd
        for name, sub in subs.items():
            yield from walk(sub, (*path, name))

    for name, cmd in walk(typer.main.get_command(app)):
        for param in cmd.params:
            if param.param_type_name != "option" or param.name in DISPLAY.get(name, set()) | {"help"}:
                continue
            assert [o for o in param.opts if o.startswith("--")] == ["--" + param.name.replace("_", "-")], name
            assert "-c" not in param.opts or param.name == "config", name
