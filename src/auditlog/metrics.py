"""Prometheus metrics of one service instance, on a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)


class Metrics:
    """The counters, gauges and histograms auditlog exports at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "auditlog_http_requests",
            "HTTP requests answered, by route pattern, method and status.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "auditlog_http_request_duration_seconds",
            "Time from the start of a request to the end of its answer, by route pattern.",
            ("route",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.events_ingested = Counter(
            "auditlog_events_ingested",
            "Events newly committed (replays of an existing id are not counted).",
            registry=self.registry,
        )
        self.commit_events = Histogram(
            "auditlog_commit_batch_events",
            "Events per group commit (one transaction).",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "auditlog_commit_duration_seconds",
            "Time one group commit took, including the flush to disk.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_events = Gauge(
            "auditlog_ingest_queue_events",
            "Events accepted by the HTTP layer and waiting for their commit.",
            registry=self.registry,
        )
        self.index_lag = Gauge(
            "auditlog_search_index_lag_events",
            "Committed events not yet in the search index (queries check them one by one).",
            registry=self.registry,
        )
        self.pool_connections = Gauge(
            "auditlog_postgres_pool_connections",
            "Connections open in this process's pool to the PostgreSQL primary.",
            registry=self.registry,
        )
        self.pool_waiting = Gauge(
            "auditlog_postgres_pool_waiting",
            "Requests of this process waiting for a pooled PostgreSQL connection.",
            registry=self.registry,
        )
        self.rejected = Counter(
            "auditlog_ingest_rejected",
            "Write requests refused before storage, by reason.",
            ("reason",),
            registry=self.registry,
        )

        self.live_streams = Gauge(
            "auditlog_live_streams",
            "Live streams (GET /v1/events/stream) open in this process.",
            registry=self.registry,
        )
        self.live_refused = Counter(
            "auditlog_live_streams_refused",
            "Live streams refused (429) for being past a cap, by cap (credential, server).",
            ("cap",),
            registry=self.registry,
        )
        self.live_cut = Counter(
            "auditlog_live_streams_cut",
            "Live streams ended because their reader fell too far behind.",
            registry=self.registry,
        )
        self.stream_lag = Gauge(
            "auditlog_stream_lag_events",
            "Events committed after a log stream's position, for the streams this process "
            "delivers.",
            ("stream", "kind"),
            registry=self.registry,
        )
        self.stream_delivered = Counter(
            "auditlog_stream_events_delivered",
            "Events a log stream delivered, from this process.",
            ("stream", "kind"),
            registry=self.registry,
        )
        self.stream_failures = Counter(
            "auditlog_stream_delivery_failures",
            "Failed deliveries of a log stream, from this process, by reason.",
            ("stream", "kind", "reason"),
            registry=self.registry,
        )
        self.stream_last_success = Gauge(
            "auditlog_stream_last_success_timestamp_seconds",
            "When a log stream last delivered events (Unix time).",
            ("stream", "kind"),
            registry=self.registry,
        )
        self.stream_last_error = Gauge(
            "auditlog_stream_last_error_timestamp_seconds",
            "When a delivery of a log stream last failed (Unix time).",
            ("stream", "kind"),
            registry=self.registry,
        )
        self.stream_failing = Gauge(
            "auditlog_stream_failing",
            "1 while a log stream's last delivery attempt failed, else 0.",
            ("stream", "kind"),
            registry=self.registry,
        )

        self.pruning = Gauge(
            "auditlog_pruning",
            "1 while this process runs a pruning round (retention), else 0.",
            registry=self.registry,
        )
        self.pruned_events = Counter(
            "auditlog_pruned_events",
            "Events pruned by retention (the tenants' horizons moved past them), by this process.",
            registry=self.registry,
        )
        self.prune_swept = Counter(
            "auditlog_prune_swept_events",
            "Stored events below a horizon removed from the store, by this process.",
            registry=self.registry,
        )
        self.prune_reclaimed = Counter(
            "auditlog_prune_reclaimed_bytes",
            "Bytes that pruning gave back to the file system, by this process.",
            registry=self.registry,
        )
        self.prune_refused = Counter(
            "auditlog_prune_refused",
            "Pruning rounds in which a tenant's due events stayed: held, or not archived.",
            ("reason",),
            registry=self.registry,
        )
        self.prune_last_round = Gauge(
            "auditlog_prune_last_round_timestamp_seconds",
            "When this process last finished a pruning round (Unix time).",
            registry=self.registry,
        )

        self.witness_cosigned_size = Gauge(
            "auditlog_witness_cosigned_size",
            "The size of the last tenants-log checkpoint each witness cosigned.",
            ("witness",),
            registry=self.registry,
        )
        self.witness_requests = Counter(
            "auditlog_witness_requests",
            "add-checkpoint requests sent to each witness, by the answer's status (0: none).",
            ("witness", "status"),
            registry=self.registry,
        )
        self.witness_refusals = Counter(
            "auditlog_witness_refusals",
            "Checkpoints a witness refused (403, 404, 400, 422, a rollback seen at a 409, or a "
            "cosignature that does not verify): an alarm, the log may have been forked.",
            ("witness", "reason"),
            registry=self.registry,
        )
        self.witness_failures = Counter(
            "auditlog_witness_failures",
            "Pushes to a witness that got no answer (timeout, connection, 5xx); retried.",
            ("witness",),
            registry=self.registry,
        )
        self.witnessed_size = Gauge(
            "auditlog_witnessed_size",
            "The size of the largest tenants-log checkpoint with the policy's quorum.",
            registry=self.registry,
        )
        self.witness_push_seconds = Histogram(
            "auditlog_witness_push_seconds",
            "Seconds from signing a tenants-log checkpoint to its quorum of cosignatures.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=self.registry,
        )

    def set_store_stats(self, stats: dict[str, float]) -> None:
        """Copy the store's gauges (``Store.stats``) into the exported metrics."""
        gauges = {
            "search_index_lag_events": self.index_lag,
            "postgres_pool_connections": self.pool_connections,
            "postgres_pool_waiting": self.pool_waiting,
        }
        for name, gauge in gauges.items():
            value = stats.get(name)
            if value is not None:
                gauge.set(value)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
