"""Configuration at the boundary: YAML files validated by pydantic, and CLI options merged over them.

Every CLI command takes ``--config FILE.yaml`` whose fields are the command's options; an option
given on the command line wins over the file. Validation errors become one-line
:class:`~roadtwin.errors.ConfigError` messages naming the file, the field and what was expected.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from roadtwin.errors import ConfigError, InputError

__all__ = ["StrictModel", "load_options", "load_yaml", "read_yaml_mapping", "validation_error"]

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config model: unknown fields are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def read_yaml_mapping(
    path: str | os.PathLike[str], *, error: type[InputError] = ConfigError
) -> dict[str, Any]:
    """Read a YAML file whose top level is a mapping; raise ``error`` (one line) otherwise."""
    p = Path(path)
    if not p.is_file():
        raise error(path=p, field=None, expected="an existing YAML file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise error(path=p, field=None, expected="a UTF-8 text file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or "syntax error"
        raise error(path=p, field=where, expected=f"valid YAML ({problem})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(path=p, field=None, expected="a YAML mapping of field: value", got=type(data).__name__)
    return data


def validation_error(
    exc: ValidationError, *, path: str | os.PathLike[str] | None, error: type[InputError] = ConfigError
) -> InputError:
    """Turn the first error of a pydantic ``ValidationError`` into a one-line ``InputError``."""
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    kind = first["type"]
    if kind == "extra_forbidden":
        expected = "no such field (unknown field)"
    elif kind == "missing":
        expected = "this required field"
    else:
        msg = first["msg"]
        # pydantic says "Input should be a valid integer"; we say "expected a valid integer".
        for prefix in ("Input should be ", "Value error, ", "Assertion failed, "):
            if msg.startswith(prefix):
                msg = msg[len(prefix) :]
        expected = msg
    got = first.get("input") if kind not in ("missing", "extra_forbidden") else None
    if isinstance(got, dict | list):
        got = None
    return error(path=path, field=field, expected=expected, got=got)


def load_yaml(path: str | os.PathLike[str], model: type[M], *, error: type[InputError] = ConfigError) -> M:
    """Load and validate a YAML file as ``model``."""
    data = read_yaml_mapping(path, error=error)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, path=path, error=error) from None


def load_options(model: type[M], *, config: str | os.PathLike[str] | None, **cli: Any) -> M:
    """Merge command-line options over an optional ``--config`` YAML file and validate them.

    Options left at ``None`` on the command line do not override the file.
    """
    data: dict[str, Any] = read_yaml_mapping(config) if config is not None else {}
    data.update({k: v for k, v in cli.items() if v is not None})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, path=config or "command line", error=ConfigError) from None
