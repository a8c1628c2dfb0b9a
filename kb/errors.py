"""Named errors. Each message says how to recover; adapters map them to exit codes and HTTP."""

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

NO_PARAMS: Mapping[str, object] = MappingProxyType({})


class FieldProblem(NamedTuple):
    """A field of an article at fault. `message` is the English sentence the CLI and the API
    give; `code` and `params` stay the same when a message is reworded, so a page can word it
    in its own language (the editor page does, in Chinese)."""

    field: str
    message: str
    code: str = "invalid"
    params: Mapping[str, object] = NO_PARAMS


class KBError(Exception):
    """Base class for every error the knowledge base raises on purpose."""


class ArticleError(KBError):
    """An article file cannot be used; names the file, the line and what to fix."""

    def __init__(self, path, line: int | None, problem: str, code: str = "invalid",
                 **params):
        self.path = str(path)
        self.line = line
        self.problem = problem
        self.code, self.params = code, params  # as in FieldProblem
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {problem}")


class NoIndex(KBError):
    """No index has been built yet."""


class IndexMismatch(KBError):
    """The index was built with another embedder than the one configured."""


class CorruptIndex(KBError):
    """An index file is missing or damaged."""


class NotFound(KBError):
    """No article with that id."""


class BadQuery(KBError):
    """The query is empty after normalisation, or too long."""


class ConfigError(KBError):
    """A setting is missing or invalid."""


class NothingToTune(KBError):
    """The knowledge base has too little text for `kb tune` to learn from."""


class InvalidArticle(KBError):
    """An edit would give an article that does not read back as written, or that clashes with
    other articles; `problems` holds a FieldProblem for each."""

    def __init__(self, problems: list[FieldProblem]):
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


class VersionRequired(KBError):
    """A change to an existing article came without the version (ETag) it was made from."""


class StaleVersion(KBError):
    """The article changed since the editor loaded it; `current` is its version now."""

    def __init__(self, message: str, current: str):
        self.current = current
        super().__init__(message)


class ArticleExists(KBError):
    """An article with that id, or a file at its path, exists already."""


class SheetError(KBError):
    """An import sheet cannot be used; `problems` lists what to fix, and nothing was written."""

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = problems or []
        super().__init__(message)


class NoQueryLog(KBError):
    """There is no query log to report on yet."""
