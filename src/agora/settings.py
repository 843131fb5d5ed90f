"""Settings, from `AGORA_*` environment variables (see docs/configuration.md) or CLI flags."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agora.messaging import ConsumerOptions, RetryPolicy
from agora.messaging.sql import DatabaseTimeouts


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGORA_", extra="ignore")

    data_dir: Path = Field(Path(".agora"), description="Folder of the embedded default's files")
    host: str = Field("127.0.0.1", description="HTTP listen address")
    port: int = Field(8000, ge=0, le=65535, description="HTTP port")
    seed_file: Path | None = Field(
        None, description="JSON list of products to list on first start (default: a demo catalog)"
    )
    hold_seconds: float = Field(600.0, gt=0, description="How long stock is held for an order")
    lock_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description="How long a batch of reservations waits for stock rows another "
        "transaction holds before it is retried (PostgreSQL's lock_timeout)",
    )
    idempotency_in_flight_seconds: float = Field(
        30.0, gt=0, description="After this, a claim left by a crashed request may be taken over"
    )
    access_token_seconds: float = Field(
        900.0, gt=0, le=86_400, description="How long an access token is valid"
    )
    refresh_token_days: float = Field(
        30.0, gt=0, le=366, description="How long a refresh token is valid (each is used once)"
    )
    revocations_check_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often identity checks that Redis still holds the revoked sessions "
        "(and publishes them again after a restart or flush; tokens answer 503 meanwhile)",
    )
    login_failures_per_account: int = Field(
        5, ge=1, description="Failed logins for one address within the window before throttling"
    )
    login_failures_per_ip: int = Field(
        20, ge=1, description="Failed logins from one client address within the window"
    )
    login_throttle_window_seconds: float = Field(
        900.0, gt=0, description="The window in which failed logins count"
    )
    partitions: int = Field(8, ge=1, le=256, description="Partitions of each topic")
    consumers_per_group: int = Field(2, ge=1, le=64, description="Consumer tasks per group")
    consumer_batch_size: int = Field(200, ge=1, le=10_000)
    retry_attempts: int = Field(5, ge=1, description="Handler attempts before a dead letter")
    retry_first_delay: float = Field(0.05, gt=0, description="Seconds before the first retry")
    retry_max_delay: float = Field(5.0, gt=0)
    database_url_template: str | None = Field(
        None,
        description="PostgreSQL URL with a {service} placeholder, one database per service "
        "(e.g. postgresql+asyncpg://agora@127.0.0.1:5432/{service}); unset: SQLite files",
    )
    kafka_bootstrap: str | None = Field(
        None, description="Kafka bootstrap servers (host:port,...); unset: the embedded log"
    )
    kafka_namespace: str = Field(
        "", description="Prefix of every topic and consumer group on the Kafka cluster"
    )
    kafka_replication_factor: int = Field(1, ge=1, description="Replication of created topics")
    redis_url: str | None = Field(None, description="Redis URL; unset: in-process twins")
    redis_max_connections: int = Field(
        64, ge=1, le=10_000, description="Connections to Redis per process (callers queue for one)"
    )
    replicas: int = Field(
        1, ge=1, le=16, description="`agora up` on servers: processes per service"
    )
    process_env: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="`agora up` on servers: environment variables of one kind of process more, "
        'JSON by service name (or "gateway"): {"orders": {"LD_PRELOAD": "..."}} (a profiler, '
        "libfaketime for a clock off by minutes)",
    )
    upstreams: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Every replica of every service, JSON: {"orders": ["http://..."], ...}: the '
        "gateway process's (the seat maps' hub, health) and `agora nginx-config`'s",
    )
    migrate_on_start: bool | None = Field(
        None,
        description="Apply migrations when a service starts (default: on the embedded "
        "default only; on servers run `agora migrate`)",
    )
    jwks_url: str | None = Field(
        None,
        description="Where processes without the identity service fetch its public keys "
        "(`agora up` on servers sets its entry's /.well-known/jwks.json)",
    )
    behind_proxy: bool = Field(
        False,
        description="The process is reached through the entry's proxy only (nginx, set by "
        "`agora up` on servers): trust the address it appends to X-Forwarded-For, and leave "
        "the console to the gateway process",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins browsers may call the API from, JSON: ["https://shop.example"]; '
        "empty: no CORS",
    )
    max_body_bytes: int = Field(1_000_000, ge=1_000, description="Largest request body accepted")
    request_header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=600,
        description="How long a client may take to send a request's headers (from connecting, "
        "or from the end of the previous response) before the connection is answered 408 and "
        "closed",
    )
    request_body_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="How long a client may take to send a request's body, once its headers "
        "arrived (408 request-timeout, and the connection closed)",
    )
    upstream_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=600,
        description="How long the entry waits for a service's answer (beyond a `Prefer: wait`)",
    )
    database_connect_timeout_seconds: float = Field(
        5.0, gt=0, le=120, description="How long opening a PostgreSQL connection may take"
    )
    database_statement_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="PostgreSQL's statement_timeout on every connection (migrations excepted): "
        "a statement running longer is cancelled",
    )
    kafka_request_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=300,
        description="How long a Kafka request, a publish's acknowledgements or a read of a "
        "consumer's lag may wait for the cluster",
    )
    redis_timeout_seconds: float = Field(
        2.0,
        gt=0,
        le=60,
        description="How long connecting to Redis, or one Redis command, may take",
    )
    forwarded_allow_ips: list[str] = Field(
        default_factory=list,
        description="Proxies whose X-Forwarded-For and X-Forwarded-Proto are trusted, JSON: "
        '["10.0.0.5"] (addresses or networks, "*" for any); empty: none, so every client is '
        "known by its own address",
    )
    rate_limits: bool = Field(True, description="Apply the rate limits at the entry")
    rate_limit_anonymous: int = Field(
        120, ge=1, description="Requests per minute (and burst) per client address, anonymous"
    )
    rate_limit_free: int = Field(600, ge=1, description="Requests per minute per free user")
    rate_limit_premium: int = Field(3_000, ge=1, description="Requests per minute per premium user")
    commission_rate_free: Decimal = Field(
        Decimal("0.10"), ge=0, le=1, description="The platform's share of a free seller's sales"
    )
    commission_rate_premium: Decimal = Field(
        Decimal("0.05"), ge=0, le=1, description="The platform's share of a premium seller's sales"
    )
    payout_holding_days: float = Field(
        7.0, ge=0, le=365, description="How long a sale's money is held before it is available"
    )
    payout_schedule_hours: float = Field(
        0.0,
        ge=0,
        le=8_760,
        description="Pay every store what it has available once per this many hours "
        "(0: only when a seller asks)",
    )
    smtp_host: str | None = Field(None, description="Mail server; unset: the local mailbox")
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_sender: str = "Agora <orders@agora.localhost>"
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")

    @property
    def uses_servers(self) -> bool:
        return bool(self.kafka_bootstrap or self.database_url_template)

    def database_url(self, service: str) -> str:
        if self.database_url_template:
            return self.database_url_template.format(service=service)
        return f"sqlite+aiosqlite:///{self.data_dir / f'{service}.db'}"

    @property
    def should_migrate_on_start(self) -> bool:
        if self.migrate_on_start is not None:
            return self.migrate_on_start
        return not self.database_url_template

    @property
    def hold_time(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.hold_seconds)

    @property
    def idempotency_in_flight(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.idempotency_in_flight_seconds)

    @property
    def database_timeouts(self) -> DatabaseTimeouts:
        return DatabaseTimeouts(
            connect=self.database_connect_timeout_seconds,
            statement=self.database_statement_timeout_seconds,
        )

    @property
    def consumer_options(self) -> ConsumerOptions:
        return ConsumerOptions(
            members=self.consumers_per_group,
            batch_size=self.consumer_batch_size,
            retry=RetryPolicy(
                attempts=self.retry_attempts,
                first_delay=self.retry_first_delay,
                max_delay=self.retry_max_delay,
            ),
        )
