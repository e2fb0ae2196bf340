"""Settings: built once at the edge (defaults < config file < environment < flags), then passed down.

``SETTINGS`` (in ``auditlog.settings``) is the one table of every setting: its name, type,
default and help. The
environment variable of a setting is ``AUDITLOG_`` + its name in upper case; the command-line
flag is ``--`` + its name with ``-`` for ``_``. This module is the only reader of ``os.environ``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from auditlog.errors import ConfigError
from auditlog.settings import SETTINGS, Setting

__all__ = ["SETTINGS", "Setting", "Settings", "load", "parse_networks"]

_BY_NAME = {s.name: s for s in SETTINGS}
#: CSP sources separated by spaces: nothing that ends the directive or the header.
_FRAME_ANCESTORS = re.compile(r"[A-Za-z0-9'*.:/_-]+( [A-Za-z0-9'*.:/_-]+)*", re.ASCII)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting's value. Build with ``load``; see ``SETTINGS`` for meanings."""

    host: str = "127.0.0.1"
    port: int = 8000
    data: str = "./data"
    store: str = ""
    sqlite_synchronous: str = "FULL"
    sqlite_cache_mb: int = 64
    postgres_pool_size: int = 10
    postgres_read_pool_size: int = 4
    postgres_read_url: str = ""
    postgres_statement_timeout_ms: int = 10000
    postgres_connect_timeout: int = 3
    read_threads: int = 4
    max_event_bytes: int = 65536
    max_batch_events: int = 10000
    max_body_bytes: int = 16 * 1024 * 1024
    max_bodies_bytes: int = 256 * 1024 * 1024
    max_data_depth: int = 32
    queue_max_events: int = 20000
    commit_max_events: int = 10000
    retry_after: int = 1
    query_timeout_ms: int = 10000
    shutdown_timeout: int = 30
    token_lifetime: int = 300
    login_failures_per_user: int = 5
    login_user_refill_seconds: int = 60
    login_failures_per_address: int = 20
    login_address_refill_seconds: int = 15
    log_origin: str = "auditlog"
    log_signing_key_file: str = ""
    witness_policy: str = ""
    witness_timeout_ms: int = 5000
    checkpoint_interval_ms: int = 200
    checkpoint_wait_ms: int = 5000
    prune_interval_seconds: int = 3600
    legacy_max_events: int = 10000
    audit_reads: bool = True
    write_rate: int = 20000
    write_burst: int = 40000
    read_rate: int = 200
    read_burst: int = 1000
    export_max_running: int = 16
    export_page_events: int = 500
    live_streams_per_credential: int = 10
    live_streams_per_process: int = 1000
    live_stream_buffer_bytes: int = 4 * 1024 * 1024
    live_stream_keepalive_seconds: int = 15
    notifier_poll_ms: int = 1000
    stream_delivery: bool = True
    stream_lease_seconds: int = 30
    stream_timeout_seconds: int = 10
    stream_batch_events: int = 500
    stream_batch_bytes: int = 1024 * 1024
    stream_linger_ms: int = 50
    stream_backoff_max_seconds: int = 300
    ui_frame_ancestors: str = "'none'"
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    tls_reload_seconds: int = 5
    trusted_proxies: str = ""
    forwarded_header: str = "x-forwarded-for"
    log_level: str = "info"
    log_format: str = "text"
    access_log: bool = False

    @property
    def store_url(self) -> str:
        """The storage URL, with the default (SQLite in the data directory) filled in."""
        if self.store:
            return self.store
        return "sqlite:///" + str(Path(self.data) / "auditlog.db")

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """``trusted_proxies`` parsed."""
        return parse_networks(self.trusted_proxies)


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Addresses and CIDR networks separated by commas or spaces; ``ConfigError`` names a bad one."""
    networks = []
    for entry in re.split(r"[\s,]+", text.strip()):
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry))
            except ValueError as exc:
                raise ConfigError(f"trusted_proxies: {entry!r}: {exc}") from None
    return tuple(networks)


def _convert(setting: Setting, value: Any, where: str) -> Any:
    try:
        if setting.type is bool:
            if isinstance(value, bool):
                out: Any = value
            elif str(value).lower() in ("1", "true", "yes", "on"):
                out = True
            elif str(value).lower() in ("0", "false", "no", "off"):
                out = False
            else:
                raise ValueError(value)
        elif setting.type is int:
            if isinstance(value, bool):
                raise ValueError(value)
            out = int(value)
        else:
            out = str(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where}: {value!r} is not a valid {setting.type.__name__} for {setting.name}"
        ) from None
    if setting.choices:
        out = out.upper() if setting.choices[0].isupper() else out.lower()
        if out not in setting.choices:
            raise ConfigError(
                f"{where}: {value!r} is not one of {', '.join(setting.choices)} for {setting.name}"
            )
    if setting.minimum is not None and out < setting.minimum:
        raise ConfigError(f"{where}: {setting.name} must be at least {setting.minimum:g}")
    return out


def load(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> Settings:
    """Settings from defaults, then a TOML file, then ``AUDITLOG_*`` variables, then flags.

    ``env`` defaults to ``os.environ``; the file is ``config_file`` or ``AUDITLOG_CONFIG``.
    Flags whose value is ``None`` were not given.
    """
    environ = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = config_file or environ.get("AUDITLOG_CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                table = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        for key, value in table.items():
            if key not in _BY_NAME:
                raise ConfigError(f"config file {path}: unknown setting {key!r}")
            values[key] = _convert(_BY_NAME[key], value, f"config file {path}")
    for setting in SETTINGS:
        if setting.env in environ:
            values[setting.name] = _convert(setting, environ[setting.env], setting.env)
    for key, value in (flags or {}).items():
        if value is not None:
            setting = _BY_NAME[key]
            values[key] = _convert(setting, value, setting.flag)
    settings = Settings(**values)
    if settings.max_bodies_bytes < settings.max_body_bytes:
        # A body between the two sizes would be refused with 503 forever, retried in vain.
        raise ConfigError(
            f"max_bodies_bytes ({settings.max_bodies_bytes}) must be at least "
            f"max_body_bytes ({settings.max_body_bytes})"
        )
    if not _FRAME_ANCESTORS.fullmatch(settings.ui_frame_ancestors):
        raise ConfigError(
            f"ui_frame_ancestors {settings.ui_frame_ancestors!r} is not a list of CSP sources "
            "('none', 'self', https://app.example.com ...) separated by spaces"
        )
    if (settings.tls_key or settings.tls_client_ca) and not settings.tls_cert:
        raise ConfigError("tls_key and tls_client_ca need tls_cert (the server's certificate)")
    settings.trusted_networks  # noqa: B018 (checked now: a bad entry stops the start)
    if settings.stream_lease_seconds < 3 * settings.stream_timeout_seconds:
        # A deliverer sends only while its lease has a timeout and more to run, and renews it
        # every sixth of it: a shorter lease would leave it no time to send.
        raise ConfigError(
            f"stream_lease_seconds ({settings.stream_lease_seconds}) must be at least three "
            f"times stream_timeout_seconds ({settings.stream_timeout_seconds})"
        )
    return settings


assert {f.name for f in fields(Settings)} == set(_BY_NAME), "SETTINGS and Settings disagree"
assert all(getattr(Settings(), s.name) == s.default for s in SETTINGS), "defaults disagree"
