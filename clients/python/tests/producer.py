"""A producer process for the spool tests: logs COUNT events with a spool, printing each id
once ``log`` has returned, then closes the client (which sends what is left).

    python producer.py URL TOKEN SPOOL_DIR COUNT
"""

from __future__ import annotations

import sys

from auditlog_client import Client


def main(url: str, token: str, spool_dir: str, count: int) -> None:
    client = Client(url, token, spool_dir=spool_dir, batch_events=100, flush_interval=0.01)
    for i in range(count):
        event_id = client.log("spooled", data={"i": i})
        print(event_id, flush=True)
    if not client.close(timeout=120):
        sys.exit(3)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
