"""``auditlog witness``: a C2SP tlog-witness v1 server (``auditlog.witness``), its own process.

* ``auditlog witness key --key-file F --name N`` makes a witness (cosigner) key in F, mode
  0600, never replacing a file; prints its verifier key alone on the last line.
* ``auditlog witness serve --key-file F --policy FILE [--host H] [--port P] [--state DIR]``
  serves add-checkpoint and the monitoring route for the logs of the C2SP tlog-policy FILE,
  with its state in DIR/witness.db, until SIGTERM or SIGINT.

Exit 0 done, 1 failed (serving could not start), 2 bad usage or an unusable file.

The witness's modules are imported when the command runs, not when ``auditlog`` builds its
parser, so the other commands do not load them.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7380
DEFAULT_STATE = "witness-state"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The actions of ``witness``: ``key`` and ``serve``."""
    parser.description = (
        "A C2SP tlog-witness: cosigns the checkpoints of the logs of a policy file once they "
        "are consistent with the last it cosigned."
    )
    actions = parser.add_subparsers(dest="witness_command", required=True, metavar="ACTION")
    key = actions.add_parser(
        "key", help="make a witness key file; prints the verifier key alone on the last line"
    )
    key.add_argument("--key-file", required=True, type=Path, metavar="F", help="the file to make")
    key.add_argument(
        "--name", required=True, metavar="N", help="the witness's name, e.g. witness.example/w1"
    )
    serve = actions.add_parser("serve", help="serve add-checkpoint and the monitoring route")
    serve.add_argument(
        "--key-file", required=True, type=Path, metavar="F", help="the witness key file"
    )
    serve.add_argument(
        "--policy",
        required=True,
        type=Path,
        metavar="FILE",
        help="a C2SP tlog-policy file: its log lines are the logs followed",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    serve.add_argument("--port", default=DEFAULT_PORT, type=int, help=f"default {DEFAULT_PORT}")
    serve.add_argument(
        "--state",
        default=Path(DEFAULT_STATE),
        type=Path,
        metavar="DIR",
        help=f"the directory of witness.db (default ./{DEFAULT_STATE})",
    )


def _fail(message: str) -> int:
    print(f"auditlog witness: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from auditlog.witness import keys

    if args.witness_command == "key":
        try:
            cosigner = keys.make(args.key_file, args.name)
        except keys.KeyFileError as exc:
            return _fail(str(exc))
        print(f"wrote the witness key {cosigner.name} to {args.key_file}; its verifier key:")
        print(cosigner.key.vkey)
        return 0
    if args.witness_command == "serve":
        return _serve(args)
    raise AssertionError(args.witness_command)


def _serve(args: argparse.Namespace) -> int:
    from auditlog.integrity import PolicyError
    from auditlog.witness import keys
    from auditlog.witness.verifier import logs_of_policy

    if not 0 < args.port < 65536:
        return _fail(f"--port: {args.port} is not a port (1-65535)")
    try:
        cosigner = keys.load(args.key_file)
    except keys.KeyFileError as exc:
        return _fail(str(exc))
    try:
        text = args.policy.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        return _fail(f"cannot read the policy {args.policy}: {reason}")
    try:
        logs = logs_of_policy(text)
    except PolicyError as exc:
        return _fail(f"the policy {args.policy}: {exc}")

    import uvicorn

    from auditlog.witness.app import WitnessApp
    from auditlog.witness.state import State, StateError

    try:
        state = State(args.state)
    except StateError as exc:
        return _fail(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("auditlog.witness").info(
        "witness %s (%s) following %d log(s): %s; state %s",
        cosigner.name,
        cosigner.key.vkey,
        len(logs),
        ", ".join(sorted(logs)),
        state.path,
    )
    try:
        config = uvicorn.Config(
            WitnessApp(cosigner, logs, state),
            host=args.host,
            port=args.port,
            log_level="warning",
            lifespan="on",
            server_header=False,
        )
        server = uvicorn.Server(config)
        # uvicorn handles SIGTERM and SIGINT while it serves, answers the requests in flight,
        # then raises the signal again under the handler that was there before it: with this
        # one, a shutdown so drained ends with exit status 0 rather than death by the signal.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _drained)
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
        return 0 if server.started else 1
    finally:
        state.close()


def _drained(signum: int, frame: FrameType | None) -> None:
    """The signal uvicorn raises again after its graceful shutdown: nothing is left to do."""
