"""Where Linear's published GraphQL schema lives, and the schema built from it, once.

The schema file is Linear's real public schema (about 1.2 MB, MIT licensed). It ships inside
this package, at `schema/schema.graphql` beside this module (with its licence and where it comes
from), so a clone, an installed wheel and the Docker image all have it; `LINEAR_SCHEMA_PATH`
names another file instead. Building it takes most of a second, so it is built lazily, on first
use, and kept for the life of the process (per path).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from graphql import GraphQLSchema, build_schema

SCHEMA_PATH_ENV = "LINEAR_SCHEMA_PATH"
# Package data (pyproject.toml), found relative to this module wherever the package is installed.
DEFAULT_SCHEMA_PATH = Path(__file__).resolve().with_name("schema") / "schema.graphql"

_lock = threading.Lock()
_built: dict[Path, GraphQLSchema] = {}


class SchemaMissing(FileNotFoundError):
    """Linear's schema file is not where it is expected."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"Linear's schema is expected at {path} (set {SCHEMA_PATH_ENV} to use another file)"
        )


def schema_path() -> Path:
    """The schema file to use: `LINEAR_SCHEMA_PATH`, or the one shipped in this package. Read
    when called, never at import time."""
    configured = os.environ.get(SCHEMA_PATH_ENV)
    return Path(configured).expanduser() if configured else DEFAULT_SCHEMA_PATH


def linear_schema(path: Path | None = None) -> GraphQLSchema:
    """Linear's schema, built once per path.

    Raises:
        SchemaMissing: the file does not exist.
    """
    path = (path or schema_path()).resolve()
    with _lock:
        schema = _built.get(path)
        if schema is None:
            if not path.is_file():
                raise SchemaMissing(path)
            schema = build_schema(path.read_text(encoding="utf-8"))
            _built[path] = schema
        return schema
