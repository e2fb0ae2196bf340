#!/usr/bin/env python3
"""Load and checks for deploy/smoke.sh, with the standard library only (runs on the host).

``write``: THREADS threads post single events, each with its own id, to URL for SECONDS
seconds, over keep-alive connections. An event whose request fails (connection reset,
502/503 from the load balancer while a replica dies) is retried with the same id until it is
answered or the run's retry window ends; ids answered 200/201 are *acknowledged* and written,
one a line, to ``--acked FILE``. Prints one summary line.

``check``: pages through every event of ``--type`` via ``GET /v1/events`` and checks that each
acknowledged id is stored exactly once (also that no id is stored twice at all), and that the
stored seqs are distinct. Exit 1 naming what is wrong.

``roundtrip``: writes one event with an id of its own, then reads it back by id and by a query
on its type, and checks that both give the stored event.

``proxy``: a failed login through the load balancer that claims, in ``X-Forwarded-For``, to
come from 203.0.113.9, with an ``X-Request-ID`` of its own: the answer must carry the request
id back, and the service's ``auditlog.login.failed`` record of it must hold the request id and
an address that is not the one claimed (the load balancer replaces the header).

``dns``: asks the DNS server at SERVER (the network's gateway, where aardvark-dns listens)
for NAME's IPv4 address, and prints the answer or ``timeout``: a diagnosis for smoke.sh.

``probe``: polls URL until it answers 200, printing the seconds it took (exit 1 on timeout).

Traffic goes only where URL points (smoke.sh: 127.0.0.1).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter


def _request(url: str, **kwargs: object) -> urllib.request.Request:
    """A request to a plain-HTTP URL (smoke.sh's are all http://127.0.0.1:...)."""
    if not url.startswith("http://"):
        raise ValueError(f"expected an http:// URL, got {url!r}")
    return urllib.request.Request(url, **kwargs)  # type: ignore[arg-type]  # noqa: S310


def _urlopen(req: urllib.request.Request, timeout: float) -> http.client.HTTPResponse:
    return urllib.request.urlopen(req, timeout=timeout)  # type: ignore[no-any-return]  # noqa: S310


def _conn(url: urllib.parse.SplitResult) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(url.hostname, url.port or 80, timeout=15)


def write(args: argparse.Namespace) -> int:
    url = urllib.parse.urlsplit(args.url)
    headers = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}
    stop_at = time.monotonic() + args.seconds
    give_up_at = stop_at + args.retry_window
    lock = threading.Lock()
    acked: list[str] = []
    counts: Counter[str] = Counter()

    def worker(n: int) -> None:
        conn = _conn(url)
        i = 0
        while time.monotonic() < stop_at:
            event_id = f"{args.prefix}-{n}-{i}"
            i += 1
            body = json.dumps(
                {
                    "id": event_id,
                    "type": args.type,
                    "actor": f"smoke-{n}",
                    "subject": {"id": f"thing-{i % 97}", "type": "thing"},
                    "data": {"worker": n, "n": i},
                }
            ).encode()
            while True:
                try:
                    conn.request("POST", "/v1/events", body=body, headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                    status = str(resp.status)
                    if resp.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = _conn(url)
                except (OSError, http.client.HTTPException) as exc:
                    status = type(exc).__name__
                    conn.close()
                    conn = _conn(url)
                with lock:
                    counts[status] += 1
                if status in ("200", "201"):
                    with lock:
                        acked.append(event_id)
                    break
                if status.startswith("4") or time.monotonic() > give_up_at:
                    break  # not acknowledged; may or may not be stored
                time.sleep(0.2)
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.seconds + args.retry_window + 30)
    elapsed = time.monotonic() - started
    with open(args.acked, "w") as f:
        f.writelines(i + "\n" for i in acked)
    answers = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(
        f"write: {len(acked)} events acknowledged in {elapsed:.1f} s "
        f"({len(acked) / elapsed:.0f}/s, {args.threads} threads); answers: {answers}"
    )
    return 0 if acked else 1


def check(args: argparse.Namespace) -> int:
    with open(args.acked) as f:
        acked = [line.strip() for line in f if line.strip()]
    seen: Counter[str] = Counter()
    seqs: Counter[int] = Counter()
    cursor = None
    pages = 0
    while True:
        params = {"type": args.type, "limit": "1000", "order": "asc"}
        if cursor:
            params["cursor"] = cursor
        req = _request(
            f"{args.url}/v1/events?{urllib.parse.urlencode(params)}",
            headers={"Authorization": f"Bearer {args.key}"},
        )
        for attempt in range(5):
            try:
                with _urlopen(req, timeout=30) as resp:
                    page = json.load(resp)
                break
            except (OSError, urllib.error.HTTPError):
                if attempt == 4:
                    raise
                time.sleep(1)
        pages += 1
        for ev in page["events"]:
            seen[ev["id"]] += 1
            seqs[ev["seq"]] += 1
        cursor = page.get("next_cursor")
        if not cursor:
            break
    problems = []
    missing = [i for i in acked if seen[i] == 0]
    twice = [i for i, c in seen.items() if c > 1]
    seq_twice = [s for s, c in seqs.items() if c > 1]
    if missing:
        problems.append(f"{len(missing)} acknowledged events not stored, e.g. {missing[:3]}")
    if twice:
        problems.append(f"{len(twice)} ids stored more than once, e.g. {twice[:3]}")
    if seq_twice:
        problems.append(f"{len(seq_twice)} seqs stored more than once, e.g. {seq_twice[:3]}")
    unacked = len(seen) - len(set(acked) & set(seen))
    print(
        f"check: {len(acked)} acknowledged, {sum(seen.values())} stored ({pages} pages, "
        f"{unacked} stored without an answer), each acknowledged id stored once: "
        f"{'no' if problems else 'yes'}"
    )
    for p in problems:
        print(f"check: FAILED: {p}")
    return 1 if problems else 0


def _call(method: str, url: str, key: str, body: bytes | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {key}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    req = _request(url, data=body, method=method, headers=headers)
    try:
        with _urlopen(req, timeout=15) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, {"error": exc.read().decode(errors="replace")[:300]}


def roundtrip(args: argparse.Namespace) -> int:
    event_id = f"roundtrip-{time.time_ns()}"
    event = {
        "id": event_id,
        "type": "smoke.roundtrip",
        "actor": "smoke",
        "subject": {"id": "inv-42", "type": "invoice"},
        "data": {"amount": 120},
    }
    status, stored = _call("POST", f"{args.url}/v1/events", args.key, json.dumps(event).encode())
    if status != 201:
        print(f"roundtrip: FAILED: POST /v1/events answered {status}: {stored}")
        return 1
    status, by_id = _call("GET", f"{args.url}/v1/events/{event_id}", args.key)
    query = urllib.parse.urlencode({"type": "smoke.roundtrip", "data.amount[gte]": "100"})
    qstatus, page = _call("GET", f"{args.url}/v1/events?{query}", args.key)
    found = [e for e in page.get("events", []) if e.get("id") == event_id]
    if status != 200 or by_id != stored or qstatus != 200 or found != [stored]:
        print(f"roundtrip: FAILED: by id {status} {by_id}; query {qstatus} {found}")
        return 1
    print(
        f"roundtrip: event {event_id} stored at seq {stored['seq']}, read back by id and by a query"
    )
    return 0


def proxy(args: argparse.Namespace) -> int:
    spoofed = "203.0.113.9"
    request_id = f"smoke-proxy-{time.time_ns()}"
    req = _request(
        f"{args.url}/v1/auth/token",
        method="POST",
        data=json.dumps({"username": args.user, "password": "not-the-password"}).encode(),
        headers={
            "Content-Type": "application/json",
            "X-Forwarded-For": spoofed,
            "Forwarded": f"for={spoofed}",
            "X-Request-ID": request_id,
        },
    )
    try:
        with _urlopen(req, timeout=15) as resp:
            status, echoed = resp.status, resp.getheader("X-Request-ID")
    except urllib.error.HTTPError as exc:
        status, echoed = exc.code, exc.headers.get("X-Request-ID")
    if status != 401 or echoed != request_id:
        print(f"proxy: FAILED: a wrong password answered {status}, X-Request-ID {echoed!r}")
        return 1
    query = urllib.parse.urlencode(
        {"type": "auditlog.login.failed", "order": "desc", "limit": "50"}
    )
    qstatus, page = _call("GET", f"{args.url}/v1/events?{query}", args.key)
    records = [e for e in page.get("events", []) if e["data"].get("request_id") == request_id]
    if qstatus != 200 or len(records) != 1:
        print(f"proxy: FAILED: no auditlog.login.failed record with request id {request_id}")
        return 1
    address = records[0]["data"].get("address")
    if address in (None, spoofed):
        print(f"proxy: FAILED: the record holds the address {address!r}")
        return 1
    print(
        f"proxy: a login claiming to come from {spoofed} was recorded from {address}, "
        f"the address the load balancer saw; X-Request-ID {request_id} came back and is in the record"
    )
    return 0


def dns(args: argparse.Namespace) -> int:
    query_id = int.from_bytes(os.urandom(2), "big")
    labels = b"".join(bytes([len(p)]) + p.encode() for p in args.name.split("."))
    packet = struct.pack(">HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + labels + b"\0\0\1\0\1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        started = time.monotonic()
        try:
            sock.sendto(packet, (args.server, 53))
            data = sock.recv(512)
        except OSError as exc:
            print(f"{args.name} at {args.server}: {type(exc).__name__} after 2 s")
            return 1
    elapsed = (time.monotonic() - started) * 1000
    rcode, answers = data[3] & 15, struct.unpack(">H", data[6:8])[0]
    print(f"{args.name} at {args.server}: rcode {rcode}, {answers} answers, {elapsed:.0f} ms")
    return 0 if rcode == 0 and answers else 1


def probe(args: argparse.Namespace) -> int:
    started = time.monotonic()
    while time.monotonic() - started < args.timeout:
        try:
            with _urlopen(_request(args.url), timeout=2) as resp:
                if resp.status == 200:
                    print(f"{time.monotonic() - started:.2f}")
                    return 0
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.1)
    print(f"probe: {args.url} did not answer 200 within {args.timeout} s", file=sys.stderr)
    return 1


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--url", required=True)
    w.add_argument("--key", required=True)
    w.add_argument("--seconds", type=float, default=15)
    w.add_argument("--threads", type=int, default=16)
    w.add_argument("--retry-window", type=float, default=20)
    w.add_argument("--type", default="smoke.load")
    w.add_argument("--prefix", default="smoke")
    w.add_argument("--acked", required=True)
    c = sub.add_parser("check")
    c.add_argument("--url", required=True)
    c.add_argument("--key", required=True)
    c.add_argument("--type", default="smoke.load")
    c.add_argument("--acked", required=True)
    t = sub.add_parser("roundtrip")
    t.add_argument("--url", required=True)
    t.add_argument("--key", required=True)
    x = sub.add_parser("proxy")
    x.add_argument("--url", required=True)
    x.add_argument("--key", required=True)
    x.add_argument("--user", required=True)
    d = sub.add_parser("dns")
    d.add_argument("server")
    d.add_argument("name")
    r = sub.add_parser("probe")
    r.add_argument("url")
    r.add_argument("--timeout", type=float, default=180)
    args = p.parse_args()
    return {
        "write": write,
        "check": check,
        "roundtrip": roundtrip,
        "proxy": proxy,
        "dns": dns,
        "probe": probe,
    }[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
