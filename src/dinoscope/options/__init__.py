"""Option groups: every setting of every command, declared once.

A command's config is composed from these groups by inheritance (``class EmbedConfig(DatasetOptions,
ModelOptions, CropOptions, RuntimeOptions, CacheOptions, OutputOptions)``), so a setting has one name, one
type, one default and one help text everywhere: the Python API, the ``--config`` YAML file and the CLI, whose
options are generated from these fields (:mod:`dinoscope.cli._options`). Stages take the groups they need.

Field metadata used by the CLI: ``description`` is the option's help; ``json_schema_extra={"short": "-m"}``
adds a short flag.

Example:
    >>> from dinoscope.config import build_config
    >>> class Settings(ModelOptions, CropOptions): ...
    >>> build_config(Settings, model="efficientnet-lite0", crop="squash").crop
    'squash'
"""

from dinoscope.options.pipeline import *  # noqa: F403
from dinoscope.options.pipeline import __all__ as _pipeline
from dinoscope.options.tasks import *  # noqa: F403
from dinoscope.options.tasks import __all__ as _tasks

__all__ = sorted([*_pipeline, *_tasks])
