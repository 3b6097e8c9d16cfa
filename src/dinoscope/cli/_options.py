"""Typer commands generated from workflow configs: every field is an option, with one spelling everywhere.

A command's options are the fields of its config (:mod:`dinoscope.options` groups composed in
:mod:`dinoscope.workflows`): the help text is the field's description, the default its default, ``--x/--no-x``
for booleans, choices for ``Literal`` types, repeatable options for lists. Every command also takes
``--config/-c FILE``: a YAML file of the same keys, which the flags given on the command line override.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic.fields import FieldInfo

from dinoscope.config import StrictModel, settings_with_file

__all__ = ["Display", "Invocation", "config_command"]

CONFIG_HELP = "YAML file of these settings (flags given on the command line win over it)."
#: Help panels of the option groups (a group not listed gets its own, named after it).
PANELS = {
    "DatasetOptions": "Dataset",
    "SelectOptions": "Dataset",
    "ClassesOptions": "Dataset",
    "SplitsOptions": "Dataset",
    "SourceOptions": "Source",
    "FrameOptions": "Video frames",
    "StrideOptions": "Video frames",
    "SamplingOptions": "Video frames",
    "ModelOptions": "Model",
    "PoolingOptions": "Model",
    "CropOptions": "Crops",
    "DeviceOptions": "Runtime",
    "RuntimeOptions": "Runtime",
    "WorkersOptions": "Runtime",
    "CacheOptions": "Cache and store",
    "AnalysisOptions": "Analysis",
    "SeedOptions": "Analysis",
    "StoreOptions": "Analysis",
    "AnalyzeStepOptions": "Output",
    "ReportStepOptions": "Output",
    "PipelineOptions": "Output",
    "OutputOptions": "Output",
    "OverwriteOptions": "Output",
    "ResumeOptions": "Output",
    "DetectOptions": "Detector",
    "DetectorOptions": "Detector",
    "ErrorsOptions": "Predictions",
    "ComponentsOptions": "PCA",
    "PatchFitOptions": "PCA",
    "PatchMergeOptions": "PCA",
    "PatchRenderOptions": "Colours",
    "ReportOptions": "Report",
    "ProbeOptions": "Probe",
    "NeighboursOptions": "Analysis",
    "SearchQueryOptions": "Query",
    "ExportTargetOptions": "Export",
    "DatasetExportOptions": "Export",
    "AdaptLengthOptions": "Adaptation",
    "AdaptRecipeOptions": "Adaptation",
    "AdaptSafetyOptions": "Adaptation",
}


@dataclass(frozen=True)
class Display:
    """A presentation-only option (how results are printed, not what is computed): never a config key."""

    name: str
    annotation: Any
    default: Any
    help: str
    flag: str | None = None


@dataclass
class Invocation:
    """One call of a generated command.

    Attributes:
        settings: Config keys: the ``--config`` file's, overridden by the flags given.
        given: Config keys set on the command line (not defaults).
        display: Values of the presentation-only options.
    """

    settings: dict[str, Any]
    given: set[str] = field(default_factory=set)
    display: dict[str, Any] = field(default_factory=dict)


def config_command(
    schema: type[StrictModel],
    handler: Callable[[Invocation], None],
    *,
    arguments: tuple[str, ...] = (),
    display: tuple[Display, ...] = (),
    doc: str | None = None,
) -> Callable[..., None]:
    """A function for ``app.command()`` whose options are the fields of ``schema``.

    Args:
        schema: The command's config model.
        handler: Called with the :class:`Invocation` (validate it with ``build_config(schema, **settings)``).
        arguments: Fields taken as positional arguments, in order.
        display: Presentation-only options.
        doc: The command's help (default: the handler's docstring).

    Example:
        >>> app.command("check")(config_command(CheckConfig, _check, arguments=("dataset",)))  # doctest: +SKIP
    """
    fields = schema.model_fields
    panels = _panels(schema)
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    params += [_argument(name, fields[name]) for name in arguments]
    params += [_option(name, fields[name], panels[name]) for name in panels if name not in arguments]
    params.append(
        inspect.Parameter(
            "config",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[Path | None, typer.Option("--config", "-c", help=CONFIG_HELP)],
        )
    )
    for d in display:
        flags = [d.flag] if d.flag else []
        params.append(
            inspect.Parameter(
                d.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=d.default,
                annotation=Annotated[d.annotation, typer.Option(*flags, help=d.help)],
            )
        )
    shown = {d.name for d in display}

    def command(ctx: typer.Context, **values: Any) -> None:
        given = {name for name in values if name in fields and _given(ctx, name)}
        config_file = values.pop("config")
        settings = settings_with_file(config_file, {name: values[name] for name in given})
        for name in arguments:  # positional arguments always count as given
            settings[name] = values[name]
        handler(Invocation(settings, given | set(arguments), {k: values[k] for k in shown}))

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = doc if doc is not None else handler.__doc__
    command.__name__ = getattr(handler, "__name__", "command").strip("_")
    return command


def _cli_type(annotation: Any) -> Any:
    """``Literal`` choices are parsed as text and validated by the config (one clear error for flags and files
    alike, listing the allowed values)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return str
    if args and any(typing.get_origin(a) is typing.Literal for a in args):
        return str | None
    return annotation


def _given(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)  # typer may carry its own ParameterSource enum: compare names
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _panels(schema: type[StrictModel]) -> dict[str, str]:
    """Every field -> the help panel of the option group declaring it, in the order the groups are composed."""
    out: dict[str, str] = {}
    for cls in schema.__mro__:
        own = [n for n in getattr(cls, "__annotations__", {}) if n in schema.model_fields and n not in out]
        title = re.sub(r"(Options|Config)$", "", cls.__name__)
        title = PANELS.get(cls.__name__) or re.sub(r"(?<=[a-z])(?=[A-Z])", " ", title).capitalize() or "Options"
        for name in own:
            out[name] = title
    return out


def _argument(name: str, info: FieldInfo) -> inspect.Parameter:
    metavar = name.upper() + ("..." if typing.get_origin(info.annotation) is list else "")
    argument = typer.Argument(help=info.description or "", metavar=metavar, show_default=not info.is_required())
    if info.is_required():
        return inspect.Parameter(
            name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Annotated[info.annotation, argument]
        )
    return inspect.Parameter(
        name,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        default=info.default,
        annotation=Annotated[info.annotation, argument],
    )


def _option(name: str, info: FieldInfo, panel: str) -> inspect.Parameter:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    flag = "--" + name.replace("_", "-")
    annotation = _cli_type(info.annotation)
    is_bool = annotation is bool or annotation == bool | None
    flags = [f"{flag}/--no-{flag[2:]}"] if is_bool and not name.startswith("no_") else [flag]
    if extra.get("short"):
        flags.append(str(extra["short"]))
    option = Annotated[annotation, typer.Option(*flags, help=info.description or "", rich_help_panel=panel)]
    if info.is_required():  # may come from the --config file: the config reports it when missing from both
        option = Annotated[annotation | None, typer.Option(*flags, help=info.description or "", rich_help_panel=panel)]
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=option)
    default = info.get_default(call_default_factory=True)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=option)
