"""Reading configs: an experiment from a YAML file, or the sections a command uses.

:func:`load_config` builds a whole :class:`~gmmspeech.config.sections.ExperimentConfig`;
:class:`ConfigSource` some sections of a file with ``--set`` items and flags on top. The
steps are :mod:`.yamlfile`, :mod:`.overrides` and :mod:`.build`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from ..errors import ConfigError, short_repr
from .build import config_from_dict, did_you_mean
from .classification import apply_feature_preset
from .overrides import apply_overrides, cut, parse_override, set_value
from .sections import ExperimentConfig, task_default
from .yamlfile import MAX_YAML_NODES, dump_yaml, read_yaml

_T = TypeVar("_T")

SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ExperimentConfig))


# ------------------------------------------------------------------------ experiments
def _absolute(value: object, key: str, marks: dict[str, str], config_dir: Path) -> object:
    """A path option made absolute: relative to the config file's folder, or to the current
    directory when it comes from the command line (``--set``)."""
    if not isinstance(value, str) or not value:
        return value
    p = Path(value).expanduser()
    if not p.is_absolute():
        from_cli = marks.get(key, marks.get(key.split("[")[0], "")).startswith("-")
        p = (Path.cwd() if from_cli else config_dir) / p
    return str(p.resolve())


def _resolve_paths(values: dict[str, object], marks: dict[str, str], config_dir: Path) -> None:
    """Make the paths of ``data`` and ``fusion`` absolute (:func:`_absolute`)."""
    data = values.get("data")
    for key in ("root", "trials", "enroll_list"):
        if isinstance(data, dict) and key in data:
            data[key] = _absolute(data[key], f"data.{key}", marks, config_dir)
    fusion = values.get("fusion")
    if isinstance(fusion, dict) and "trials" in fusion:
        fusion["trials"] = _absolute(fusion["trials"], "fusion.trials", marks, config_dir)
    systems = fusion.get("systems") if isinstance(fusion, dict) else None
    for i, system in enumerate(systems if isinstance(systems, list) else []):
        for key in ("experiment", "scores", "calibration_trials", "calibration_scores"):
            if isinstance(system, dict) and key in system:
                dotted = f"fusion.systems[{i}].{key}"
                system[key] = _absolute(system[key], dotted, marks, config_dir)


def load_config(
    path: str | os.PathLike[str] | None, overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """Read an experiment YAML file, apply ``--set`` overrides and validate everything.

    Parameters
    ----------
    path : path-like or None
        The YAML file (PyYAML's safe loader; ``${env:NAME}`` and ``${env:NAME,default}`` in
        strings are replaced by environment variables); None starts from the defaults.
    overrides : sequence of str
        ``"section.key=value"`` items; values are YAML (``256``, ``[1, 2]``, ``null``) and
        are type-checked like the file's.

    Returns
    -------
    ExperimentConfig
        With ``data.root`` and ``data.trials`` made absolute, ``features.preset`` expanded.

    Raises
    ------
    ConfigError
        Naming ``file:line`` (or ``--set`` item), dotted key, what was expected and found.

    Examples
    --------
    >>> cfg = load_config(None, ["task=classification", "data.dataset.pattern={label}/{f}.wav"])
    >>> cfg.ubm.n_components, cfg.data.dataset.pattern
    (512, '{label}/{f}.wav')
    """
    raw: dict[str, str] = {}
    if path is None:
        values: dict[str, object] = {}
        marks: dict[str, str] = {}
        where, config_dir = "config", Path.cwd()
    else:
        values, marks = read_yaml(path, raw)
        where, config_dir = str(path), Path(path).resolve().parent
    values = apply_overrides(values, overrides, marks, raw)
    _resolve_paths(values, marks, config_dir)
    values = task_default(values, values.get("task", ExperimentConfig.task))
    values = apply_feature_preset(values, where)  # features.preset expanded (and logged)
    return config_from_dict(ExperimentConfig, values, where=where, marks=marks, raw=raw)


# ---------------------------------------------------------------------------- commands
class ConfigSource:
    """The config sections a command uses: a YAML file, ``--set`` items and flags.

    Parameters
    ----------
    path : path-like or None
        A YAML file (an experiment config works as it is; sections the command does not
        use are checked for unknown names only). None starts from the defaults.
    overrides : sequence of str
        ``section.key=value`` items, applied after the file.
    flags : mapping of str to (str, object), optional
        Dotted key -> (flag as typed, value) of command-line flags that mirror a config
        field, applied last (e.g. ``{"enroll.adapt": ("--adapt", "mw")}``).
    bare : str, optional
        A section whose keys may also be given at the top level of the file (when it has no
        section names) and in undotted ``--set key=value`` items.

    Examples
    --------
    >>> from gmmspeech.config.sections import EnrollConfig
    >>> src = ConfigSource(None, ["enroll.relevance_factor=8"], {"enroll.adapt": ("--adapt", "mw")})
    >>> src.section("enroll", EnrollConfig)
    EnrollConfig(relevance_factor=8.0, adapt='mw')
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        overrides: Sequence[str] = (),
        flags: Mapping[str, tuple[str, object]] | None = None,
        *,
        bare: str | None = None,
    ) -> None:
        self.raw: dict[str, str] = {}
        values: dict[str, object] = {}
        marks: dict[str, str] = {}
        self.where = "config"
        if path is not None:
            values, marks = read_yaml(path, self.raw)
            self.where = str(path)
        if bare is not None:
            if values and not any(k in SECTIONS for k in values):
                values = {bare: values}
                marks = {f"{bare}.{k}": v for k, v in marks.items()}
                self.raw = {f"{bare}.{k}": v for k, v in self.raw.items()}
            overrides = [o if "." in o.partition("=")[0] else f"{bare}.{o}" for o in overrides]
        values = apply_overrides(values, overrides, marks, self.raw)
        for key, (flag, value) in (flags or {}).items():
            set_value(values, key, value, f"{flag} {cut(str(value))}", marks)
        for key in values:
            if key not in SECTIONS:
                hint = did_you_mean(key, SECTIONS, otherwise=f"sections are {list(SECTIONS)}")
                raise ConfigError(
                    f"{marks.get(str(key), self.where)}: unknown section {short_repr(key)}; {hint}"
                )
        self.values = values
        self.marks = marks

    def section(self, name: str, cls: type[_T], *, task: str | None = None) -> _T:
        """Section ``name`` built as ``cls``, typed and validated (with the defaults of
        ``task`` where they differ, :data:`~gmmspeech.config.sections.TASK_DEFAULTS`)."""
        section = task_default(self.values, task).get(name) or {}
        if not isinstance(section, dict):
            raise ConfigError(
                f"{self.marks.get(name, self.where)}: {name}: expected a mapping of options, "
                f"got {short_repr(section)}"
            )
        return config_from_dict(
            cls, section, where=self.where, marks=self.marks, raw=self.raw, prefix=f"{name}."
        )


__all__ = [
    "MAX_YAML_NODES",
    "ConfigSource",
    "apply_overrides",
    "config_from_dict",
    "did_you_mean",
    "dump_yaml",
    "load_config",
    "parse_override",
    "read_yaml",
]
