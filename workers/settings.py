"""Typed settings, read from the environment when a composition root asks, never at import."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TASK_QUEUE = "durable"


class Settings(BaseSettings):
    """Where the product runs. Unset addresses mean the embedded dev stack.

    Attributes:
        temporal_address: TEMPORAL_ADDRESS, host:port of a Temporal frontend. Unset: the
            embedded dev server (`durable dev`) at 127.0.0.1:7233.
        temporal_namespace: TEMPORAL_NAMESPACE.
        database_url: DATABASE_URL, a postgresql:// URL. Unset: the embedded PostgreSQL.
        task_queue: DURABLE_TASK_QUEUE, the queue workers poll and runs start on.
        data_dir: DURABLE_DATA_DIR, where the embedded stack keeps its SQLite file and
            PostgreSQL cluster, so runs survive a restart.
    """

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    temporal_address: str | None = Field(default=None, alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", alias="TEMPORAL_NAMESPACE")
    database_url: SecretStr | None = Field(default=None, alias="DATABASE_URL")
    task_queue: str = Field(default=DEFAULT_TASK_QUEUE, alias="DURABLE_TASK_QUEUE")
    data_dir: Path = Field(default=Path(".durable"), alias="DURABLE_DATA_DIR")
    temporal_port: int = Field(default=7233, alias="DURABLE_TEMPORAL_PORT")
    ui_port: int = Field(default=8233, alias="DURABLE_UI_PORT")
    api_port: int = Field(default=8400, alias="DURABLE_API_PORT")
    max_concurrent_activities: int = Field(default=100, alias="DURABLE_MAX_CONCURRENT_ACTIVITIES")
    graceful_shutdown_seconds: float = Field(
        default=30.0, alias="DURABLE_GRACEFUL_SHUTDOWN_SECONDS"
    )
    log_format: str = Field(default="json", alias="DURABLE_LOG_FORMAT")

    @property
    def effective_temporal_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"
