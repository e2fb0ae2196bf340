"""Settings: built once at the edge (defaults < config file < environment < flags), then passed down.

``SETTINGS`` is the one table of every setting: its name, type, default and help. The
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


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None

    @property
    def env(self) -> str:
        return "AUDITLOG_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("host", str, "127.0.0.1", "Address to listen on."),
    Setting("port", int, 8000, "TCP port to listen on.", minimum=0),
    Setting(
        "data",
        str,
        "./data",
        "Directory of the embedded SQLite database (used when store is empty).",
    ),
    Setting(
        "store",
        str,
        "",
        "Storage URL: sqlite:///path/to/file.db, postgresql://user@host:port/database, or "
        "memory: (nothing kept). Empty means sqlite in the data directory.",
    ),
    Setting(
        "sqlite_synchronous",
        str,
        "FULL",
        "SQLite synchronous mode. FULL survives power loss; NORMAL survives a crash of the "
        "process but may lose the last commits on power loss.",
        choices=("FULL", "NORMAL"),
    ),
    Setting("sqlite_cache_mb", int, 64, "SQLite page cache per connection, in MiB.", minimum=1),
    Setting(
        "postgres_pool_size",
        int,
        10,
        "Most connections one process keeps to the PostgreSQL primary (writes, reads by id, "
        "credentials, the Merkle tree).",
        minimum=2,
    ),
    Setting(
        "postgres_read_pool_size",
        int,
        4,
        "Most connections one process keeps for queries (GET /v1/events), to the read "
        "replica if one is set, else to the primary.",
        minimum=1,
    ),
    Setting(
        "postgres_read_url",
        str,
        "",
        "Optional postgresql:// URL of a read replica for queries. Empty: queries go to the "
        "primary.",
    ),
    Setting(
        "postgres_statement_timeout_ms",
        int,
        10000,
        "PostgreSQL statement_timeout of the primary's connections (queries use query_timeout_ms).",
        minimum=1,
    ),
    Setting(
        "postgres_connect_timeout",
        int,
        3,
        "Seconds to wait for a PostgreSQL connection before answering 503.",
        minimum=1,
    ),
    Setting(
        "read_threads",
        int,
        4,
        "Threads (each with its own connection) that run queries.",
        minimum=1,
    ),
    Setting(
        "max_event_bytes", int, 65536, "Largest stored event, serialised, in bytes.", minimum=1024
    ),
    Setting("max_batch_events", int, 10000, "Most events in one batch request.", minimum=1),
    Setting(
        "max_body_bytes", int, 16 * 1024 * 1024, "Largest request body, in bytes.", minimum=1024
    ),
    Setting(
        "max_bodies_bytes",
        int,
        256 * 1024 * 1024,
        "Request bodies held at once, in bytes; past it a request is refused with 503.",
        minimum=1024,
    ),
    Setting("max_data_depth", int, 32, "Deepest nesting of an event's data.", minimum=1),
    Setting(
        "queue_max_events",
        int,
        20000,
        "Events waiting for commit beyond which writes are refused with 503.",
        minimum=1,
    ),
    Setting(
        "commit_max_events",
        int,
        10000,
        "Most events committed in one transaction (a larger single batch still commits whole).",
        minimum=1,
    ),
    Setting(
        "retry_after", int, 1, "Seconds a client is told to wait (Retry-After) on 503.", minimum=1
    ),
    Setting(
        "query_timeout_ms",
        int,
        10000,
        "A query running longer than this is stopped and answered with 503.",
        minimum=1,
    ),
    Setting(
        "shutdown_timeout", int, 30, "Seconds to finish in-flight requests on SIGTERM.", minimum=1
    ),
    Setting(
        "token_lifetime",
        int,
        300,
        "Seconds a login token (JWT from POST /v1/auth/token or /login) stays valid.",
        minimum=1,
    ),
    Setting(
        "login_failures_per_user",
        int,
        5,
        "Failed logins one username may have in a burst before logins for it are refused with 429.",
        minimum=1,
    ),
    Setting(
        "login_user_refill_seconds",
        int,
        60,
        "Seconds after which one more failed login is allowed for a username.",
        minimum=1,
    ),
    Setting(
        "login_failures_per_address",
        int,
        20,
        "Failed logins one client address may have in a burst before its logins are refused "
        "with 429.",
        minimum=1,
    ),
    Setting(
        "login_address_refill_seconds",
        int,
        15,
        "Seconds after which one more failed login is allowed for a client address.",
        minimum=1,
    ),
    Setting(
        "log_origin",
        str,
        "auditlog",
        "Prefix of each tenant's checkpoint origin (<log_origin>/<tenant>), e.g. the host name.",
    ),
    Setting(
        "log_signing_key_file",
        str,
        "",
        "File of the Ed25519 key that signs checkpoints (PEM or base64 seed). Empty: a key made "
        "on first start and kept in the store.",
    ),
    Setting(
        "checkpoint_interval_ms",
        int,
        200,
        "Milliseconds between integrator rounds: a log that grew gets a new signed checkpoint.",
        minimum=10,
    ),
    Setting(
        "checkpoint_wait_ms",
        int,
        5000,
        "Longest a POST /v1/events?wait=checkpoint waits for a checkpoint covering its events.",
        minimum=0,
    ),
    Setting(
        "prune_interval_seconds",
        int,
        3600,
        "Seconds between the service's pruning rounds (retention, docs/operations.md); 0: the "
        "service never prunes, auditlog prune does.",
        minimum=0,
    ),
    Setting(
        "legacy_max_events",
        int,
        10000,
        "Most events GET /event (the first version's route) answers with; a query matching "
        "more is refused with 400.",
        minimum=1,
    ),
    Setting(
        "audit_reads",
        bool,
        True,
        "Record every read of the log as an auditlog.log.read event in the tenant's log.",
    ),
    Setting(
        "write_rate",
        int,
        20000,
        "Write requests per second allowed to one credential (0: no limit).",
        minimum=0,
    ),
    Setting(
        "write_burst", int, 40000, "Write requests one credential may make at once.", minimum=1
    ),
    Setting(
        "read_rate",
        int,
        200,
        "Read requests per second allowed to one credential (0: no limit).",
        minimum=0,
    ),
    Setting("read_burst", int, 1000, "Read requests one credential may make at once.", minimum=1),
    Setting(
        "export_max_running",
        int,
        16,
        "Exports (GET /v1/events/export) one process runs at once; past it 429.",
        minimum=1,
    ),
    Setting(
        "export_page_events",
        int,
        500,
        "Events an export reads, and holds, at a time.",
        minimum=1,
    ),
    Setting(
        "live_streams_per_credential",
        int,
        10,
        "Live streams (GET /v1/events/stream) one credential may hold open; past it 429.",
        minimum=1,
    ),
    Setting(
        "live_streams_per_process",
        int,
        1000,
        "Live streams one process holds open at most; past it 429.",
        minimum=1,
    ),
    Setting(
        "live_stream_buffer_bytes",
        int,
        4 * 1024 * 1024,
        "Bytes of events that may arrive for a live stream while its reader is busy with what "
        "it took before; past it the reader is cut off.",
        minimum=65536,
    ),
    Setting(
        "live_stream_keepalive_seconds",
        int,
        15,
        "Seconds without an event after which a live stream sends a comment line.",
        minimum=1,
    ),
    Setting(
        "notifier_poll_ms",
        int,
        1000,
        "Milliseconds between reads of every log's durable size, which find commits that no "
        "process announced (admin commands, a lost notification).",
        minimum=10,
    ),
    Setting(
        "stream_delivery",
        bool,
        True,
        "Deliver log streams (POST /v1/streams) from this process.",
    ),
    Setting(
        "stream_lease_seconds",
        int,
        30,
        "Seconds a process holds a log stream's delivery lease after renewing it; another "
        "process takes a stream over this long after its deliverer died.",
        minimum=3,
    ),
    Setting(
        "stream_timeout_seconds",
        int,
        10,
        "Seconds one delivery of a batch may take before it counts as failed.",
        minimum=1,
    ),
    Setting(
        "stream_batch_events",
        int,
        500,
        "Most events a log stream delivers in one batch.",
        minimum=1,
    ),
    Setting(
        "stream_batch_bytes",
        int,
        1024 * 1024,
        "Most bytes of events in one batch (an event larger than this goes alone).",
        minimum=1024,
    ),
    Setting(
        "stream_linger_ms",
        int,
        50,
        "Milliseconds a log stream waits for more events before it sends a batch that is not full.",
        minimum=0,
    ),
    Setting(
        "stream_backoff_max_seconds",
        int,
        300,
        "Longest wait between retries of a failing delivery (unless Retry-After asks for more).",
        minimum=1,
    ),
    Setting(
        "ui_frame_ancestors",
        str,
        "'none'",
        "Who may frame the web console (CSP frame-ancestors): 'none', 'self', or origins "
        "separated by spaces.",
    ),
    Setting(
        "tls_cert",
        str,
        "",
        "PEM file of the server's certificate chain, leaf first: set, serve HTTPS. Reloaded on "
        "SIGHUP and when it changes.",
    ),
    Setting(
        "tls_key", str, "", "PEM file of the certificate's private key (empty: it is in tls_cert)."
    ),
    Setting(
        "tls_client_ca",
        str,
        "",
        "PEM file of the CAs whose client certificates are accepted: set, every client must "
        "present one (mutual TLS).",
    ),
    Setting(
        "tls_reload_seconds",
        int,
        5,
        "Seconds between checks of the TLS files for a change (0: reload on SIGHUP only).",
        minimum=0,
    ),
    Setting(
        "trusted_proxies",
        str,
        "",
        "Addresses or CIDR networks, separated by commas or spaces, of proxies whose "
        "forwarding header is believed for the client's address.",
    ),
    Setting(
        "forwarded_header",
        str,
        "x-forwarded-for",
        "The header the trusted proxies write: x-forwarded-for (with X-Forwarded-Proto) or "
        "forwarded (RFC 7239).",
        choices=("x-forwarded-for", "forwarded"),
    ),
    Setting("log_level", str, "info", "Log level.", choices=("debug", "info", "warning", "error")),
    Setting(
        "log_format",
        str,
        "text",
        "Log lines as text, or json: one JSON object per line.",
        choices=("text", "json"),
    ),
    Setting("access_log", bool, False, "Log every request (costs throughput)."),
)
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
