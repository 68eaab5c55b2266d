"""`kwsd listen` against a real daemon: JSON lines, --exec with the event in KWSD_* variables
(no shell unless --shell), and the config's per-keyword [commands]."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest
from running_daemon import start

from .conftest import REPO, make_config

DUMP_ENV = ("import json, os, sys; "
            "json.dump({k: v for k, v in os.environ.items() if k.startswith('KWSD_')}, "
            "open(sys.argv[1], 'w'))")


@pytest.fixture
def looping_daemon(random_bundle, padded_wav, sock_dir):
    running = start(make_config(random_bundle, padded_wav, sock_dir / "kwsd.sock",
                                realtime=True, loop=True))
    yield running
    running.stop()


def _listen(address: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "daemon")}
    env.pop("KWSD_TOKEN", None)
    return subprocess.Popen([sys.executable, "-m", "kwsd", "listen", "--address", address,
                             "--count", "1", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def test_listen_exec_and_commands(looping_daemon, tmp_path):
    env_file = tmp_path / "env.json"
    pwned = tmp_path / "pwned"
    exec_cmd = shlex.join([sys.executable, "-c", DUMP_ENV, str(env_file)])
    exec_cmd += f" ; touch {pwned}"  # no shell: these are just more arguments
    config = tmp_path / "kwsd.toml"
    config.write_text(
        "[commands]\n" + "".join(
            f"{kw} = {json.dumps([sys.executable, '-c', DUMP_ENV, str(tmp_path / kw)])}\n"
            for kw in ("yes", "no")))
    shell_file = tmp_path / "shell.txt"
    shell_cmd = f'echo "$KWSD_KEYWORD $KWSD_SEQUENCE" > {shell_file}'
    procs = {
        "exec": _listen(looping_daemon.address, "--json", "--config", str(config),
                        "--exec", exec_cmd),
        "shell": _listen(looping_daemon.address, "--no-commands", "--config", str(config),
                         "--shell", "--exec", shell_cmd),
    }
    out = {}
    for name, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        assert proc.returncode == 0, f"{name}: {stderr}"
        out[name] = stdout

    [line] = out["exec"].splitlines()
    event = json.loads(line)
    assert event["kind"] == "detection" and event["keyword"] in ("yes", "no")
    env = json.loads(env_file.read_text())
    assert env["KWSD_KEYWORD"] == event["keyword"]
    assert env["KWSD_SOURCE"] == "file"
    assert env["KWSD_SEQUENCE"] == str(event["sequence"])
    assert env["KWSD_MODEL"] == looping_daemon.daemon.bundle.model_id
    assert float(env["KWSD_CONFIDENCE"]) == pytest.approx(event["confidence"], abs=1e-4)
    assert float(env["KWSD_START_S"]) == pytest.approx(event["start_s"], abs=1e-3)
    assert float(env["KWSD_END_S"]) == pytest.approx(event["end_s"], abs=1e-3)
    assert float(env["KWSD_START_S"]) < float(env["KWSD_END_S"])
    assert not pwned.exists(), "--exec went through a shell"
    # The [commands] entry of the detected keyword ran too, with the same event.
    assert json.loads((tmp_path / event["keyword"]).read_text()) == env

    [plain] = out["shell"].splitlines()
    keyword, sequence = shell_file.read_text().split()
    assert keyword in plain and f"#{sequence}" in plain


def test_listen_reports_a_bad_filter(looping_daemon, tmp_path):
    proc = _listen(looping_daemon.address, "--keyword", "banana", "--config",
                   str(tmp_path / "absent.toml"))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "absent.toml" in stderr  # an explicit config file must exist
    (tmp_path / "empty.toml").write_text("")
    proc = _listen(looping_daemon.address, "--keyword", "banana", "--config",
                   str(tmp_path / "empty.toml"))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "INVALID_ARGUMENT" in stderr and "banana" in stderr
