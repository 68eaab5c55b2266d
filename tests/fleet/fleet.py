"""A fleet on loopback: N real `kwsd serve` processes on TCP (token + insecure_loopback, the
rule for plain TCP) and the real HAProxy binary in front of them, run with the configuration
that ships in deploy/haproxy/haproxy.cfg. HAProxy's admin socket says what it thinks of each
daemon; each daemon's own Unix socket says how many streams it holds."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.api.v1 import kwsd_pb2_grpc as pb_grpc
from reliability.server import ServeProcess
from running_daemon import KEYWORDS, LOW_THRESHOLD

REPO = Path(__file__).resolve().parents[2]
HAPROXY_CFG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
TOKEN = "fleet-test-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def haproxy_binary() -> str:
    path = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy")
                                       else None)
    if path is None:
        raise AssertionError("haproxy is not installed (scripts/install.sh installs Debian's "
                             "haproxy package)")
    return path


def daemon_toml(bundle: Path, folder: Path, port: int,
                extra_api: str = "insecure_loopback = true",
                audio: str = 'source = "none"') -> str:
    thresholds = ", ".join(f'{k} = {LOW_THRESHOLD}' for k in KEYWORDS)
    return f"""[model]
path = "{bundle}"
[audio]
{audio}
[engine]
warmup = false
torch_threads = 1
[decision]
thresholds = {{ {thresholds} }}
[api]
socket = "{folder / 'kwsd.sock'}"
tcp = "127.0.0.1:{port}"
token = "{TOKEN}"
max_streams = 16
{extra_api}
"""


@dataclass
class FleetDaemon:
    name: str
    folder: Path
    port: int
    config: Path
    proc: ServeProcess | None = None

    def start(self) -> FleetDaemon:
        self.proc = ServeProcess("--config", str(self.config))
        return self

    def wait_ready(self, timeout: float = 300.0) -> None:
        self.proc.wait_log("ready:", timeout)

    @property
    def pid(self) -> int:
        return self.proc.proc.pid

    def status(self) -> pb.Status:
        """Straight from the daemon over its Unix socket (no balancer, no token)."""
        with grpc.insecure_channel(f"unix:{self.folder / 'kwsd.sock'}") as ch:
            return pb_grpc.KwsdStub(ch).GetStatus(pb.GetStatusRequest(), timeout=30)

    def signal(self, signum: int) -> None:
        self.proc.signal(signum)

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.proc.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.proc.poll() is None:
            self.proc.signal(signal.SIGTERM)
            try:
                self.proc.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass
class Balancer:
    """HAProxy with deploy/haproxy/haproxy.cfg; its log goes to a file."""

    folder: Path
    servers: list[str]
    bind_opts: str = "proto h2"
    server_opts: str = "proto h2"
    config: Path = HAPROXY_CFG
    port: int = field(default_factory=free_port)
    monitor_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def stats_socket(self) -> Path:
        return self.folder / "haproxy.sock"

    @property
    def log(self) -> Path:
        return self.folder / "haproxy.log"

    def env(self) -> dict[str, str]:
        env = dict(os.environ, KWSD_LB_BIND=self.address, KWSD_LB_BIND_OPTS=self.bind_opts,
                   KWSD_SERVER_OPTS=self.server_opts,
                   KWSD_LB_MONITOR=f"127.0.0.1:{self.monitor_port}",
                   KWSD_LB_STATS=str(self.stats_socket))
        for i, server in enumerate(self.servers, start=1):
            env[f"KWSD_SERVER_{i}"] = server
        return env

    def check_config(self) -> subprocess.CompletedProcess:
        return subprocess.run([haproxy_binary(), "-c", "-f", str(self.config)], env=self.env(),
                              capture_output=True, text=True, timeout=60)

    def start(self) -> Balancer:
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([haproxy_binary(), "-db", "-f", str(self.config)],
                                         env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not self.stats_socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"haproxy did not start: {self.log.read_text()}")
            time.sleep(0.05)
        return self

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(self.stats_socket))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while data := s.recv(65536):
                chunks.append(data)
        return b"".join(chunks).decode()

    def server_states(self) -> dict[str, dict[str, str]]:
        """HAProxy's view of each daemon: status (UP, DOWN, ...), check_status, scur."""
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(text.splitlines())
        return {r["svname"]: r for r in rows
                if r["pxname"] == "kwsd" and r["svname"] not in ("FRONTEND", "BACKEND")}

    def wait_status(self, server: str, want: str, timeout: float = 120.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        row: dict[str, str] = {}
        while time.monotonic() < deadline:
            row = self.server_states().get(server, {})
            if row.get("status") == want:
                return row
            time.sleep(0.2)
        raise AssertionError(f"{server} is not {want} within {timeout} s: {row}; log: "
                             f"{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
