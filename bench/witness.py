#!/usr/bin/env python3
"""Witnessing benchmark: the cost of three local witnesses to ingest, and how soon a write is
witnessed.

For each scenario, a fresh SQLite store is served (``auditlog serve``) and loaded with wrk
(single events, ``--conns`` connections, ``--seconds`` long):

* one tenant, without witnesses (the ingest rate to compare with), then with three
  ``auditlog witness serve`` processes and a 2-of-3 policy;
* the load spread at random over ``--many`` tenants (1,000 API keys, ``post_tenants.lua``),
  without and with the witnesses.

While the load runs, a probe writes one event every 0.5 s (its own tenant) and asks for its
receipt (``GET /v1/events/{id}/receipt``) every 20 ms until it is served: with witnesses the
receipt exists only once a tenants-log checkpoint with the quorum of cosignatures includes the
event, so the time from the write's answer to the receipt is the time from a commit to its
witnessed checkpoint (without witnesses, to the tenants-log checkpoint that includes it). The
probe runs in every scenario, so that its own load is in each. Also from ``/metrics``: add-checkpoint requests to each witness per second, and the
histogram of sign-to-quorum times. At the end (server stopped), the tenants log's tables are
measured with SQLite's ``dbstat``: bytes per second of load, scaled to a day, beside the
tenants' own checkpoints.

Reproduce:  .venv/bin/python bench/witness.py
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from harness import BackgroundWrk, reproduce  # noqa: E402
from ingest import AUDITLOG, clean_env, code_version, free_port, start_server, stop_server  # noqa: E402

from auditlog import config  # noqa: E402
from auditlog.integrity import note  # noqa: E402
from auditlog.service.auth import ApiKeys  # noqa: E402
from auditlog.storage.factory import open_store  # noqa: E402

SEED = bytes(range(32))
WITNESSES = 3
TENANTS_TABLES = ("tenants_leaves", "tenants_nodes", "tenants_checkpoints")


def make_keys(data: str, tenants: list[str]) -> list[str]:
    """One events:write+read key per tenant, made through the store (fast for 1,000)."""

    async def run() -> list[str]:
        settings = config.load({"data": data}, config_file=None)
        store = open_store(settings)
        await store.open()
        try:
            keys = ApiKeys(store)
            return [
                (await keys.create(t, ("events:write", "events:read"), f"bench-{t}"))[1]
                for t in tenants
            ]
        finally:
            await store.close()

    return asyncio.run(run())


def start_witnesses(root: Path, tenants_vkey: str) -> tuple[list[subprocess.Popen[bytes]], str]:
    """Three witnesses on free ports; the service's policy (2 of 3) naming them."""
    policy_for_witness = root / "witness-policy.txt"
    policy_for_witness.write_text(f"log {tenants_vkey}\nquorum none\n")
    procs, lines = [], [f"log {tenants_vkey}"]
    for i in range(WITNESSES):
        key_file = root / f"w{i}.key"
        out = subprocess.run(
            [AUDITLOG, "witness", "key", "--key-file", str(key_file), "--name", f"w{i}.bench"],
            capture_output=True,
            text=True,
            check=True,
            env=clean_env(),
        ).stdout
        vkey = out.strip().splitlines()[-1]
        port = free_port()
        procs.append(
            subprocess.Popen(
                [
                    AUDITLOG,
                    "witness",
                    "serve",
                    "--key-file",
                    str(key_file),
                    "--policy",
                    str(policy_for_witness),
                    "--port",
                    str(port),
                    "--state",
                    str(root / f"w{i}-state"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=clean_env(),
            )
        )
        lines.append(f"witness w{i} {vkey} http://127.0.0.1:{port}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"witness {i} did not start")
    lines += [f"group all {2} w0 w1 w2", "quorum all"]
    return procs, "\n".join(lines) + "\n"


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        if name.startswith(("auditlog_witness", "auditlog_events_ingested_total")):
            found[name] = float(value)
    return found


class Probe:
    """Every 0.5 s: write one event, then poll its receipt; the seconds until it is served."""

    def __init__(self, port: int, key: str) -> None:
        self.port, self.key = port, key
        self.delays: list[float] = []
        self.missed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            status, body = self._request("POST", "/v1/events", b'{"type":"probe"}')
            if status != 201:
                continue
            written = time.monotonic()
            event_id = orjson.loads(body)["id"]
            deadline = written + 30
            while not self._stop.is_set():
                status, _ = self._request("GET", f"/v1/events/{event_id}/receipt")
                if status == 200:
                    self.delays.append(time.monotonic() - written)
                    break
                if time.monotonic() > deadline:
                    self.missed += 1
                    break
                time.sleep(0.02)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def tenants_log_bytes(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        # Bytes in use (pages less their free space): a small table's pages are mostly empty.
        sizes = dict(
            conn.execute("SELECT name, sum(pgsize) - sum(unused) FROM dbstat GROUP BY name")
        )
        index_of = dict(
            conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'")
        )
    out: dict[str, int] = {}
    for name, size in sizes.items():
        table = index_of.get(name, name)
        out[table] = out.get(table, 0) + int(size or 0)
    return out


def scenario(
    name: str, tenants: int, witnessed: bool, args: argparse.Namespace
) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix=f"witness-bench-{name}-"))
    data = str(root / "data")
    witnesses: list[subprocess.Popen[bytes]] = []
    server = None
    try:
        key_file = root / "log.key"
        key_file.write_text(base64.b64encode(SEED).decode() + "\n")
        tenants_vkey = note.Signer("auditlog", SEED).verifier.vkey
        flags = ["--log-signing-key-file", str(key_file)]
        if witnessed:
            witnesses, policy = start_witnesses(root, tenants_vkey)
            (root / "policy.txt").write_text(policy)
            flags += ["--witness-policy", str(root / "policy.txt")]
        names = [f"t{i:04d}" for i in range(tenants)] + ["probe"]
        keys = make_keys(data, names)
        (root / "keys.txt").write_text("\n".join(keys[:-1]) + "\n")
        os.environ["AUDITLOG_KEYS_FILE"] = str(root / "keys.txt")
        port = free_port()
        server = start_server(data, port, flags=flags)
        probe = Probe(port, keys[-1])
        before = scrape(port)
        wrk = BackgroundWrk("post_tenants.lua", args.conns, args.seconds, port, "", str(root))
        wrk.start()
        probe.start()
        fields, _ = wrk.join()
        probe.stop()
        after = scrape(port)
        seconds = fields["duration_s"]
        stop_server(server)
        server = None
        sizes = tenants_log_bytes(Path(data) / "auditlog.db")
        requests = {
            w: sum(
                v - before.get(k, 0.0)
                for k, v in after.items()
                if k.startswith("auditlog_witness_requests_total") and f'witness="{w}"' in k
            )
            for w in ("w0", "w1", "w2")
        }
        tenants_bytes = sum(sizes.get(t, 0) for t in TENANTS_TABLES)
        with sqlite3.connect(Path(data) / "auditlog.db") as conn:
            leaves = conn.execute("SELECT count(*) FROM tenants_leaves").fetchone()[0]
        return {
            "name": name,
            "tenants": tenants,
            "events_per_s": fields["rps"],
            "p99_ms": fields["p99_ms"],
            "non2xx": fields["non2xx"],
            "delays": sorted(probe.delays),
            "missed": probe.missed,
            "witness_rps": {w: r / seconds for w, r in requests.items()},
            "leaves_per_s": leaves / seconds,
            "tenants_log_bytes_per_day": tenants_bytes / seconds * 86400,
            "checkpoints_bytes_per_day": sizes.get("checkpoints", 0) / seconds * 86400,
        }
    finally:
        if server is not None:
            stop_server(server)
        stop_all(witnesses)
        shutil.rmtree(root, ignore_errors=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


SCENARIOS = (("off", 1, False), ("1", 1, True), ("off", 0, False), ("many", 0, True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--many", type=int, default=1000, help="tenants of the spread scenario")
    parser.add_argument(
        "--runs", type=int, default=3, help="runs of each scenario, taken in turn (median)"
    )
    args = parser.parse_args()
    print(f"code {code_version()}, {os.cpu_count()} CPUs, wrk -c{args.conns} for {args.seconds} s")
    runs: list[list[dict[str, object]]] = [[] for _ in SCENARIOS]
    for _ in range(args.runs):
        for i, (name, tenants, witnessed) in enumerate(SCENARIOS):
            runs[i].append(scenario(name, tenants or args.many, witnessed, args))
    print()
    print(
        "| witnesses | tenants | events/s: median (runs) | p99 ms | write → witnessed receipt: "
        "median / p90 / max s (n, all runs) | add-checkpoint req/s per witness | tenants-log "
        "leaves/s | tenants log MB/day | tenant checkpoints MB/day |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (_, _, witnessed), results in zip(SCENARIOS, runs, strict=True):
        rates = [float(r["events_per_s"]) for r in results]  # type: ignore[arg-type]
        middle = sorted(results, key=lambda r: float(r["events_per_s"]))[len(results) // 2]  # type: ignore[arg-type]
        delays = sorted(d for r in results for d in r["delays"])  # type: ignore[attr-defined]
        missed = sum(int(r["missed"]) for r in results)  # type: ignore[call-overload]
        wr = middle["witness_rps"]
        assert isinstance(wr, dict)
        lat = (
            f"— ({missed} missed)"
            if not delays
            else f"{statistics.median(delays):.2f} / {pct(delays, 0.9):.2f} / "
            f"{max(delays):.2f} ({len(delays)}, {missed} missed)"
        )
        rps = "—" if not witnessed else " / ".join(f"{v:.1f}" for v in wr.values())
        each = ", ".join(f"{v:,.0f}" for v in rates)
        print(
            f"| {'3 (2 of 3)' if witnessed else 'none'} | {middle['tenants']} "
            f"| **{statistics.median(rates):,.0f}** ({each}) | {middle['p99_ms']:.1f} | {lat} "
            f"| {rps} | {middle['leaves_per_s']:,.1f} "
            f"| {float(middle['tenants_log_bytes_per_day']) / 1e6:,.0f} "  # type: ignore[arg-type]
            f"| {float(middle['checkpoints_bytes_per_day']) / 1e6:,.0f} |"  # type: ignore[arg-type]
        )
    print()
    print(reproduce("witness.py", sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
