"""A producer that ends without ``flush`` or ``close``: the ``atexit`` hook sends what it
queued before the interpreter goes."""

from __future__ import annotations

import subprocess
import sys

from .conftest import Live
from .helpers import stored

SCRIPT = """
import sys
from auditlog_client import Client
client = Client(sys.argv[1], sys.argv[2], flush_interval=3600, batch_events=10_000)
for i in range(50):
    print(client.log("exit.test", data={"i": i}))
# no flush, no close: the interpreter ends here
"""


def test_what_is_queued_is_sent_at_interpreter_exit(live: Live, token: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, live.url, token],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    logged = done.stdout.split()
    assert len(logged) == 50
    assert [e["id"] for e in stored(live.url, token, type="exit.test")] == logged
