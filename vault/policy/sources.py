"""Reading the files in `policies/`: YAML with line numbers, and a content hash.

Validation errors must name the file and line, so YAML mappings are loaded as
`LocatedDict`s that remember the line of each key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from vault.policy.errors import PolicyConfigError

MODEL_FILE = "vault_model.conf"
POLICY_FILE = "vault_policy.csv"
PURPOSES_FILE = "purposes.yaml"
VIEWS_FILE = "views.yaml"
POLICY_FILES = (MODEL_FILE, POLICY_FILE, PURPOSES_FILE, VIEWS_FILE)


class LocatedDict(dict[str, Any]):
    """A YAML mapping that knows the 1-based line of each of its keys."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.key_lines: dict[str, int] = {}

    def line_of(self, key: str) -> int:
        """The line of `key`, or of the mapping itself when the key is absent."""
        return self.key_lines.get(key, self.line)


class _LocatingLoader(yaml.SafeLoader):
    """SafeLoader whose mappings are `LocatedDict`s and which refuses duplicate keys."""


def _construct_mapping(loader: _LocatingLoader, node: yaml.MappingNode) -> Any:
    loader.flatten_mapping(node)
    data = LocatedDict()
    data.line = node.start_mark.line + 1
    yield data
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise _YamlShapeError(line, "mapping keys must be strings")
        # PyYAML silently keeps the last duplicate; in a policy file that hides a mistake.
        if key in data:
            raise _YamlShapeError(line, f"duplicate key '{key}'")
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = line


_LocatingLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


class _YamlShapeError(Exception):
    def __init__(self, line: int, detail: str) -> None:
        super().__init__(detail)
        self.line = line
        self.detail = detail


def read_text(directory: Path, name: str) -> str:
    """A policy file's text; a missing or unreadable file is a `PolicyConfigError`."""
    try:
        return (directory / name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyConfigError(name, None, f"cannot read file ({type(exc).__name__})") from exc


def load_yaml(name: str, text: str) -> LocatedDict:
    """Parse a policy YAML document whose top level must be a mapping."""
    try:
        data = yaml.load(text, Loader=_LocatingLoader)  # noqa: S506 - SafeLoader subclass
    except _YamlShapeError as exc:
        raise PolicyConfigError(name, exc.line, exc.detail) from exc
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise PolicyConfigError(name, line, f"invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise PolicyConfigError(name, None, "invalid YAML") from exc
    except RecursionError as exc:
        # PyYAML's parser and constructor recurse once per nested collection.
        raise PolicyConfigError(name, None, "invalid YAML: nested too deeply") from exc
    if not isinstance(data, LocatedDict):
        raise PolicyConfigError(name, 1, "the document must be a mapping")
    return data


def is_version_one(value: object) -> bool:
    """The files' `version: 1` marker (YAML `true` equals 1 in Python; refuse it)."""
    return type(value) is int and value == 1


def content_version(texts: Iterable[tuple[str, str]]) -> str:
    """A short hash of (file name, text) pairs: equal files, equal version."""
    digest = hashlib.sha256()
    for name, text in texts:
        for part in (name, text):
            data = part.encode("utf-8")
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
    return digest.hexdigest()[:16]


def stat_signature(directory: Path) -> tuple[tuple[int, int], ...]:
    """(mtime_ns, size) of each policy file; (-1, -1) for a missing one."""
    signature = []
    for name in POLICY_FILES:
        try:
            stat = (directory / name).stat()
            signature.append((stat.st_mtime_ns, stat.st_size))
        except OSError:
            signature.append((-1, -1))
    return tuple(signature)
