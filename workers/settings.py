"""Typed settings, read from the environment when a composition root asks, never at import."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from activities.agents import ProjectRoutes
from activities.linear.steps import LinearCredentials
from adapters.temporal import parse_codec_keys

from .fleet.sealing import parse_encryption_key
from .logs import level_named

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
        traces_exporter, service_name: OTEL_TRACES_EXPORTER and OTEL_SERVICE_NAME (see
            `workers.telemetry`).
        metrics_port, metrics_host: DURABLE_METRICS_PORT and DURABLE_METRICS_HOST, where a
            worker serves Temporal's metrics for Prometheus.
    """

    # hide_input_in_errors: a bad value must not print secrets (keys, URLs) into the log.
    model_config = SettingsConfigDict(
        env_prefix="", extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    temporal_address: str | None = Field(default=None, alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", alias="TEMPORAL_NAMESPACE")
    database_url: SecretStr | None = Field(default=None, alias="DATABASE_URL")
    task_queue: str = Field(default=DEFAULT_TASK_QUEUE, alias="DURABLE_TASK_QUEUE")
    data_dir: Path = Field(default=Path(".durable"), alias="DURABLE_DATA_DIR")
    temporal_port: int = Field(default=7233, alias="DURABLE_TEMPORAL_PORT")
    ui_port: int = Field(default=8233, alias="DURABLE_UI_PORT")
    api_port: int = Field(default=8400, alias="DURABLE_API_PORT")
    api_host: str = Field(default="127.0.0.1", alias="DURABLE_API_HOST")
    # Which proxies `durable api` believes X-Forwarded-For/-Proto from (comma-separated, `*`).
    api_forwarded_allow_ips: str = Field(
        default="127.0.0.1", alias="DURABLE_API_FORWARDED_ALLOW_IPS"
    )
    # What the CLI sends events and approvals with: an API key (`durable keys create`; in
    # `durable dev`, the local key it writes to DURABLE_DATA_DIR/api-key), to this API.
    api_key: SecretStr | None = Field(default=None, alias="DURABLE_API_KEY")
    api_url: str | None = Field(default=None, alias="DURABLE_API_URL")
    max_concurrent_activities: int = Field(default=100, alias="DURABLE_MAX_CONCURRENT_ACTIVITIES")
    graceful_shutdown_seconds: float = Field(
        default=30.0, alias="DURABLE_GRACEFUL_SHUTDOWN_SECONDS"
    )
    log_format: str = Field(default="json", alias="DURABLE_LOG_FORMAT")
    # debug | info | warning; httpx's per-request lines show only at debug (workers/logs.py).
    log_level: str = Field(default="info", alias="DURABLE_LOG_LEVEL")
    # Write a step_executions row per step attempt (one commit each) before it reports.
    step_audit: bool = Field(default=True, alias="DURABLE_STEP_AUDIT")
    # Standard OpenTelemetry variables: none | console | otlp (comma-separated for several);
    # the OTLP exporter reads OTEL_EXPORTER_OTLP_* itself.
    traces_exporter: str = Field(default="none", alias="OTEL_TRACES_EXPORTER")
    service_name: str = Field(default="durable", alias="OTEL_SERVICE_NAME")
    otel_sdk_disabled: bool = Field(default=False, alias="OTEL_SDK_DISABLED")
    # Temporal's worker metrics for Prometheus at http://{host}:{port}/metrics; unset: off.
    metrics_port: int | None = Field(default=None, alias="DURABLE_METRICS_PORT")
    metrics_host: str = Field(default="127.0.0.1", alias="DURABLE_METRICS_HOST")

    # Payload encryption: "id:<base64 32 bytes>,..."; the first key encrypts, all decrypt.
    codec_keys: SecretStr | None = Field(default=None, alias="DURABLE_CODEC_KEYS")
    # The codec endpoint (/codec/encode, /codec/decode): bearer token, and the UI origins
    # allowed to call it (comma-separated; unset: the embedded UI on ui_port).
    codec_token: SecretStr | None = Field(default=None, alias="DURABLE_CODEC_TOKEN")
    codec_cors_origins: str | None = Field(default=None, alias="DURABLE_CODEC_CORS_ORIGINS")
    # Signing secrets of the Linear webhook (POST /webhooks/linear), comma-separated: the
    # current one first, the previous one beside it while a rotation is under way. Unset: the
    # endpoint answers 503 "not configured".
    linear_webhook_secrets: SecretStr | None = Field(default=None, alias="LINEAR_WEBHOOK_SECRETS")
    # Agent sessions: the task queue per project ("proj-a=pool-a,*=pool-b"; unset: every session
    # on DURABLE_TASK_QUEUE), and the chat-completions endpoint of the `http` runtime (unset:
    # no `http` runtime).
    agent_routes: str | None = Field(default=None, alias="DURABLE_AGENT_ROUTES")
    agent_http_base_url: str | None = Field(default=None, alias="AGENT_HTTP_BASE_URL")
    agent_http_model: str = Field(default="gpt-4o-mini", alias="AGENT_HTTP_MODEL")
    agent_http_api_key: SecretStr | None = Field(default=None, alias="AGENT_HTTP_API_KEY")
    # Linear: credentials per org (JSON objects {"<org id>": "<secret>"}) and the endpoint.
    # With neither set, `durable dev` starts the local Linear-compatible server on
    # DURABLE_LINEAR_PORT and acts on it.
    linear_api_keys: SecretStr | None = Field(default=None, alias="LINEAR_API_KEYS")
    linear_oauth_tokens: SecretStr | None = Field(default=None, alias="LINEAR_OAUTH_TOKENS")
    linear_api_url: str = Field(default="https://api.linear.app/graphql", alias="LINEAR_API_URL")
    linear_local_port: int = Field(default=8500, alias="DURABLE_LINEAR_PORT")

    # The worker fleet. Workers heartbeat this often; one silent for the grace period is
    # offline (its slots stop counting).
    fleet_heartbeat_seconds: float = Field(
        default=30.0, alias="DURABLE_FLEET_HEARTBEAT_SECONDS", gt=0
    )
    fleet_heartbeat_grace_seconds: float = Field(
        default=90.0, alias="DURABLE_FLEET_HEARTBEAT_GRACE_SECONDS", gt=0
    )
    # Runtime JWTs (ES256): the P-256 signing key in PEM (unset: one kept in Postgres, made on
    # first use, encrypted with AES-256-GCM under DURABLE_FLEET_KEY_ENCRYPTION_KEY, base64 of
    # 32 bytes; with neither set, only the embedded stack starts: see workers/fleet/admin.py),
    # issuer, audience and lifetime (the most the API accepts, whatever a token says).
    fleet_signing_key: SecretStr | None = Field(default=None, alias="DURABLE_FLEET_SIGNING_KEY")
    fleet_key_encryption_key: SecretStr | None = Field(
        default=None, alias="DURABLE_FLEET_KEY_ENCRYPTION_KEY"
    )
    fleet_issuer: str = Field(default="durable", alias="DURABLE_FLEET_ISSUER")
    fleet_audience: str = Field(default="durable-workers", alias="DURABLE_FLEET_AUDIENCE")
    fleet_jwt_ttl_seconds: int = Field(default=900, alias="DURABLE_FLEET_JWT_TTL_SECONDS", ge=60)
    # The legacy shared worker key (transitional): accepted only on the session endpoints the
    # old model kept on it, only when DURABLE_LEGACY_WORKER_KEY_ENABLED is true, and every use
    # logs a deprecation warning.
    legacy_worker_key: SecretStr | None = Field(default=None, alias="WORKER_API_KEY")
    legacy_worker_key_enabled: bool = Field(
        default=False, alias="DURABLE_LEGACY_WORKER_KEY_ENABLED"
    )

    @property
    def fleet_heartbeat_grace(self) -> timedelta:
        return timedelta(seconds=self.fleet_heartbeat_grace_seconds)

    @property
    def local_key_file(self) -> Path:
        """Where `durable dev` keeps the local org's API key for the CLI."""
        return self.data_dir / "api-key"

    def cli_api_key(self) -> str | None:
        """DURABLE_API_KEY, else the key `durable dev` wrote in its data dir (found from any
        directory: `workers.locate`), else None."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        from .locate import locate_data_dir  # it reads settings: import it when used

        try:
            key_file = locate_data_dir(self).path / self.local_key_file.name
            return key_file.read_text().strip() or None
        except OSError:
            return None

    @property
    def effective_api_url(self) -> str:
        return (self.api_url or f"http://127.0.0.1:{self.api_port}").rstrip("/")

    @property
    def linear_configured(self) -> bool:
        return self.linear_api_keys is not None or self.linear_oauth_tokens is not None

    @field_validator("linear_api_keys", "linear_oauth_tokens")
    @classmethod
    def _valid_linear_credentials(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:  # fail at startup, naming the variable, never the secret
            LinearCredentials(api_keys=value.get_secret_value())
        return value

    @field_validator("codec_keys")
    @classmethod
    def _valid_codec_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_codec_keys(value.get_secret_value())  # fail at startup, not at first payload
        return value

    @field_validator("fleet_key_encryption_key")
    @classmethod
    def _valid_fleet_key_encryption_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:  # fail at startup, naming the variable, never the key
            parse_encryption_key(value.get_secret_value())
        return value

    @field_validator("log_level")
    @classmethod
    def _valid_log_level(cls, value: str) -> str:
        level_named(value)  # fail at startup with the accepted names
        return value.strip().lower()

    @field_validator("agent_routes")
    @classmethod
    def _valid_agent_routes(cls, value: str | None) -> str | None:
        ProjectRoutes.parse(value)  # fail at startup, not at the first dispatch
        return value

    def linear_webhook_secret_list(self) -> list[SecretStr]:
        """The Linear webhook's signing secrets, current first; empty when unset (or blank)."""
        if self.linear_webhook_secrets is None:
            return []
        raw = self.linear_webhook_secrets.get_secret_value()
        return [SecretStr(s.strip()) for s in raw.split(",") if s.strip()]

    @property
    def codec_origins(self) -> list[str]:
        if self.codec_cors_origins is not None:
            return [o.strip() for o in self.codec_cors_origins.split(",") if o.strip()]
        return [f"http://127.0.0.1:{self.ui_port}", f"http://localhost:{self.ui_port}"]

    @property
    def effective_temporal_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"
