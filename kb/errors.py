"""Named errors. Each message says how to recover; adapters map them to exit codes and HTTP."""


class KBError(Exception):
    """Base class for every error the knowledge base raises on purpose."""


class ArticleError(KBError):
    """An article file cannot be used; names the file, the line and what to fix."""

    def __init__(self, path, line: int | None, problem: str):
        self.path = str(path)
        self.line = line
        self.problem = problem
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
