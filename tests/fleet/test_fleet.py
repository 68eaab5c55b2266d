"""A fleet behind the real HAProxy (issue 16, item 3): three `kwsd serve` daemons on loopback
TCP, HAProxy with deploy/haproxy/haproxy.cfg in front, Detect streams from the load generator
and from `kwsd.client` spread over them; one daemon is killed in the middle.

What must hold, whatever the machine's speed:
* the balancer spreads the streams: every daemon holds one `kwsd.client` stream and two load
  streams (HAProxy `balance leastconn`, streams opened one after another);
* streams on the other daemons lose nothing: their detections equal the offline pipeline's on
  exactly the audio they sent, and every sample was processed;
* the killed daemon's load streams end with UNAVAILABLE or CANCELLED, nothing else. SIGTERM
  (what an orchestrator sends): the daemon ends each stream with UNAVAILABLE, and HAProxy
  passes it on unless its bug #1219 (Debian's 2.6) turns the status the daemon sent before
  the client's half-close into RST_STREAM CANCEL. SIGKILL: the daemon says nothing and
  HAProxy resets its streams (CANCEL). kwsd.client retries both;
* the killed daemon's `kwsd.client` stream hears "disconnected", reconnects through the
  balancer to a live daemon and returns the result of the whole clip;
* HAProxy's active grpc.health.v1 check takes the daemon out, and puts it back once it is
  restarted.
Figures (daemon CPU and memory per stream, time to mark a daemon down) are printed.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from kwsd.client import KwsdClient
from reliability.load import RATE, RealtimeStream, proc_cpu_s, proc_rss_mb
from reliability.server import detection_key, make_config, reference_detections

from .fleet import TOKEN, Balancer, FleetDaemon, daemon_toml, free_port

AUDIO_S = 20.0          # each stream's audio, sent in real time: it outlives the kill
LOAD_PER_DAEMON = 2


@dataclass
class ClientStream:
    """One kwsd.client user: `detect(..., realtime=True, reconnect=True)` on its own thread."""

    client: KwsdClient
    samples: np.ndarray
    label: str
    states: list[tuple[str, str]] = field(default_factory=list)
    result: object = None
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self._run, name=self.label, daemon=True)

    def _on_state(self, state: str, detail: str) -> None:
        self.states.append((state, detail))
        if state == "connected":
            self.connected.set()

    def _run(self) -> None:
        try:
            self.result = self.client.detect(self.samples, realtime=True, reconnect=True,
                                             label=self.label, on_state=self._on_state)
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.connected.set()


def _streams_open(daemons: list[FleetDaemon]) -> list[int]:
    return [d.status().streams_open for d in daemons]


def _wait_streams(daemons: list[FleetDaemon], total: int, timeout: float = 120.0) -> list[int]:
    deadline = time.monotonic() + timeout
    counts = _streams_open(daemons)
    while sum(counts) < total and time.monotonic() < deadline:
        time.sleep(0.1)
        counts = _streams_open(daemons)
    assert sum(counts) == total, f"streams open per daemon {counts}, want {total} in all"
    return counts


@pytest.fixture
def speech(clip_pool) -> np.ndarray:
    from reliability.synth import Program

    return Program(clip_pool, AUDIO_S, seed=11, keyword_every_s=5.0).samples()


@pytest.fixture
def fleet(random_bundle, fleet_dir):
    daemons = []
    for i in range(3):
        folder = fleet_dir / f"d{i + 1}"
        folder.mkdir()
        port = free_port()
        config = folder / "kwsd.toml"
        config.write_text(daemon_toml(random_bundle, folder, port))
        daemons.append(FleetDaemon(f"kwsd{i + 1}", folder, port, config).start())
    lb = Balancer(fleet_dir, [f"127.0.0.1:{d.port}" for d in daemons])
    try:
        for d in daemons:
            d.wait_ready()
        lb.start()
        for d in daemons:
            lb.wait_status(d.name, "UP")
        yield daemons, lb
    finally:
        lb.stop()
        for d in daemons:
            d.stop()


@pytest.mark.parametrize("kill", [
    signal.SIGTERM,
    # A crash adds little that SIGTERM does not cover and costs CI another 1.5-3 minutes.
    pytest.param(signal.SIGKILL, marks=pytest.mark.slow),
], ids=["sigterm", "sigkill"])
def test_fleet_survives_a_killed_daemon(fleet, speech, random_bundle, kill):
    daemons, lb = fleet
    victim_index = 1
    victim = daemons[victim_index]
    config = make_config(random_bundle, daemons[0].folder / "unused.sock")
    whole_reference = reference_detections(random_bundle, speech, config)

    # One kwsd.client stream per daemon, opened one after another: leastconn gives each daemon
    # one, and the daemons' own counters say which.
    clients = [KwsdClient(lb.address, token=TOKEN, insecure_loopback=True) for _ in range(3)]
    users: list[ClientStream] = []
    user_on: list[int] = []
    for i, client in enumerate(clients):
        before = _streams_open(daemons)
        user = ClientStream(client, speech, f"user{i}")
        user.thread.start()
        assert user.connected.wait(120) and user.error is None, user.error
        users.append(user)
        after = _wait_streams(daemons, i + 1)
        user_on.append(next(j for j in range(3) if after[j] > before[j]))
    assert sorted(user_on) == [0, 1, 2], f"kwsd.client streams per daemon: {user_on}"

    # Then the load generator: two real-time streams per daemon over one channel (the token
    # rides along as call metadata, as kwsd.client sends it).
    load_client = KwsdClient(lb.address, token=TOKEN, insecure_loopback=True)
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    load = []
    for i in range(LOAD_PER_DAEMON * 3):
        stream = RealtimeStream(load_client.channel, f"load{i}", speech, AUDIO_S,
                                metadata=metadata)
        stream.start()
        load.append(stream)
        _wait_streams(daemons, 3 + i + 1)
    counts = _streams_open(daemons)
    print(f"\nstreams per daemon before the kill: {counts}")
    assert counts == [1 + LOAD_PER_DAEMON] * 3, f"the balancer did not spread: {counts}"

    cpu0 = {d.name: proc_cpu_s(d.pid) for d in daemons}
    t_cpu0 = time.monotonic()
    time.sleep(2.0)  # the kill comes in the middle of the streams
    cpu = {d.name: (proc_cpu_s(d.pid) - cpu0[d.name]) / (time.monotonic() - t_cpu0)
           for d in daemons}
    rss = {d.name: proc_rss_mb(d.pid) for d in daemons}
    victim_load = victim.status().streams_open - 1
    t_kill = time.monotonic()
    victim.signal(kill)
    victim.wait_exit(30)
    down = lb.wait_status(victim.name, "DOWN")
    t_down = time.monotonic() - t_kill

    for stream in load:
        stream.join(AUDIO_S * 10 + 300)
        assert not stream.is_alive(), f"{stream.name} did not finish"
    for user in users:
        user.thread.join(AUDIO_S * 10 + 300)
        assert not user.thread.is_alive(), f"{user.label} did not finish"

    # The killed daemon's load streams: ended with the status the kill allows.
    want = {"UNAVAILABLE", "CANCELLED"}
    failed = [s for s in load if s.stats.error]
    assert len(failed) == victim_load, \
        f"{len(failed)} streams failed, the killed daemon held {victim_load}: " \
        f"{[s.stats.error for s in failed]}"
    for s in failed:
        assert s.stats.error.split(":")[0] in want, s.stats.error
        if s.stats.error.startswith("CANCELLED"):
            assert "RST_STREAM" in s.stats.error, s.stats.error

    # The others lost nothing: every sample processed, detections as offline on their audio
    # (the whole clip: AUDIO_S is a whole number of the load generator's chunks).
    for s in load:
        if s.stats.error:
            continue
        sent = np.frombuffer(b"".join(s.chunks), dtype="<i2")
        assert np.array_equal(sent, speech)
        assert round(s.stats.sent_s * RATE) == len(sent), f"{s.name}: not every sample processed"
        assert s.detections == whole_reference, s.name

    # kwsd.client: the killed daemon's user reconnected through the balancer; all results whole.
    for i, user in enumerate(users):
        assert user.error is None, f"{user.label}: {user.error!r}"
        assert user.result.summary.samples_processed == len(speech), user.label
        assert [detection_key(e) for e in user.result.detections] == whole_reference, user.label
        states = [s for s, _ in user.states]
        if user_on[i] == victim_index:
            assert states[:2] == ["connected", "disconnected"], user.states
            assert user.states[1][1].split(":")[0] in want, user.states
            assert states[-1] == "connected", user.states
        else:
            assert states == ["connected"], f"{user.label}: {user.states}"

    # The restarted daemon passes its health check again and takes streams.
    victim.start()
    victim.wait_ready()
    lb.wait_status(victim.name, "UP")

    print(f"fleet ({kill.name}): daemon CPU with {1 + LOAD_PER_DAEMON} real-time streams each "
          f"{ {k: f'{100 * v:.0f} %' for k, v in cpu.items()} }, RSS "
          f"{ {k: f'{v:.0f} MB' for k, v in rss.items()} }; killed daemon marked "
          f"{down['status']} ({down['check_status']}) {t_down:.1f} s after the kill; "
          f"{len(failed)} load streams ended {sorted({s.stats.error for s in failed})}; "
          f"client reconnect: {users[user_on.index(victim_index)].states}")
    for c in clients + [load_client]:
        c.close()
