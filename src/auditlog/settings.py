"""The table of every setting: its name, type, default and one line of help.

``auditlog.config`` builds ``Settings`` from it (defaults < config file < environment < flags);
``docs/configuration.md`` lists every entry, which a test checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
        "witness_policy",
        str,
        "",
        "C2SP tlog-policy file of the witnesses that cosign the tenants log (docs/witness.md); "
        "each witness line with its URL. Empty: no witnesses.",
    ),
    Setting(
        "witness_timeout_ms",
        int,
        5000,
        "Milliseconds a witness has to answer one add-checkpoint request.",
        minimum=1,
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
