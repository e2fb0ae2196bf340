"""``auditlog witness key`` and ``auditlog witness serve``: the key file, refusals of bad
files and flags (exit 2, no traceback), and the witness as a real process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from auditlog.cli.main import main
from auditlog.integrity import note as notes
from auditlog.integrity.cosignature import Cosigner, CosignerKey
from live_server import environment, free_port
from witness.logs import TestLog

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def test_key_makes_a_private_file_and_prints_the_vkey(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "witness.key"
    assert main(["witness", "key", "--key-file", str(key_file), "--name", "w.example/1"]) == 0
    vkey = capsys.readouterr().out.splitlines()[-1]
    key = CosignerKey.from_vkey(vkey)
    assert key.name == "w.example/1"
    assert key_file.stat().st_mode & 0o777 == 0o600
    text = key_file.read_text()
    assert text.startswith("PRIVATE+KEY+w.example/1+")
    assert text.endswith("\n")
    assert Cosigner.from_skey(text.strip()).key == key

    # Never replaced.
    assert main(["witness", "key", "--key-file", str(key_file), "--name", "other"]) == 2
    err = capsys.readouterr().err
    assert "exists; a key file is never replaced" in err
    assert key_file.read_text() == text


def test_key_with_a_bad_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key_file = tmp_path / "k"
    assert main(["witness", "key", "--key-file", str(key_file), "--name", "a b"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("auditlog witness: cannot make a key named 'a b'")
    assert "Traceback" not in err
    assert not key_file.exists()


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    key_file = tmp_path / "witness.key"
    key_file.write_text(Cosigner.generate("w.example/1").skey() + "\n")
    policy = tmp_path / "policy"
    policy.write_text(TestLog().policy())
    return key_file, policy


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing key", "cannot read the key file"),
        ("log key as witness key", "does not hold a witness (cosigner) key"),
        ("missing policy", "cannot read the policy"),
        ("bad policy", "the policy"),
        ("policy without logs", "names no log"),
        ("port", "--port: 70000 is not a port"),
        ("state is a file", "cannot open the witness state"),
    ],
)
def test_serve_refuses_bad_files_and_flags(
    tmp_path: Path,
    files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    change: str,
    message: str,
) -> None:
    key_file, policy = files
    port, state = "7380", tmp_path / "state"
    if change == "missing key":
        key_file = tmp_path / "nothing"
    elif change == "log key as witness key":
        key_file.write_text(notes.Signer("log.example", b"k" * 32).skey() + "\n")
    elif change == "missing policy":
        policy = tmp_path / "nothing"
    elif change == "bad policy":
        policy.write_text("log not-a-key\nquorum none\n")
    elif change == "policy without logs":
        policy.write_text("quorum none\n")
    elif change == "port":
        port = "70000"
    elif change == "state is a file":
        state.write_text("")
    argv = ["witness", "serve", "--key-file", str(key_file), "--policy", str(policy)]
    code = main([*argv, "--port", port, "--state", str(state)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("auditlog witness: ")
    assert message in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_serve_as_a_process_cosigns(tmp_path: Path) -> None:
    log = TestLog(leaves=6)
    key_file = tmp_path / "witness.key"
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "auditlog",
            "witness",
            "key",
            "--key-file",
            str(key_file),
            "--name",
            "witness.example/w1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(),
        check=False,
    )
    assert made.returncode == 0, made.stderr
    key = CosignerKey.from_vkey(made.stdout.splitlines()[-1])
    policy = tmp_path / "policy.txt"
    policy.write_text(log.policy())
    port = free_port()
    output = tmp_path / "witness.log"
    with open(output, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "auditlog",
                "witness",
                "serve",
                "--key-file",
                str(key_file),
                "--policy",
                str(policy),
                "--port",
                str(port),
                "--state",
                str(tmp_path / "s"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment(),
        )
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=10.0) as client:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                assert process.poll() is None, output.read_text()
                assert time.monotonic() < deadline, output.read_text()
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/").status_code == 200:
                        break
                time.sleep(0.05)
            assert client.get("/").text == f"auditlog witness witness.example/w1 {key.vkey}\n"
            answer = client.post("/add-checkpoint", content=log.body(0, 6))
            assert answer.status_code == 200, answer.text
            (signature,) = notes.parse("-\n\n" + answer.text).signatures
            timestamp = key.verify(log.text(6), signature)
            assert abs(timestamp - time.time()) < 60
            again = client.post("/add-checkpoint", content=log.body(0, 6))
            assert (again.status_code, again.text) == (409, "6\n")
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=STOP_TIMEOUT) == 0
        logged = output.read_text()
        assert "following 1 log(s): example.com/log" in logged
        assert "refused add-checkpoint: origin 'example.com/log', status 409" in logged
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)
    assert (tmp_path / "s" / "witness.db").exists()
