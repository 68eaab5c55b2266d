"""The health service answers from the daemon's state at the time of the call (a fake daemon:
no poller running, so a stale answer could only come from a cache)."""

from types import SimpleNamespace

from grpc_health.v1 import health_pb2
from kwsd.server.health import SERVICE_NAME, HealthReporter

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class FakeDaemon:
    def __init__(self) -> None:
        self.serving = False
        self.stopping = False
        self.state = "running"

    def status(self) -> dict:
        return {"sources": [{"id": "mic", "state": self.state}]}


def _check(reporter: HealthReporter, service: str = SERVICE_NAME) -> int:
    request = health_pb2.HealthCheckRequest(service=service)
    return reporter.servicer.Check(request, SimpleNamespace()).status


def test_check_follows_the_daemon_without_waiting_for_a_poll():
    daemon = FakeDaemon()
    reporter = HealthReporter(daemon)  # not started: nothing polls
    assert _check(reporter) == NOT_SERVING  # model loading
    daemon.serving = True  # sources started
    assert _check(reporter) == SERVING
    assert _check(reporter, "") == SERVING
    daemon.state = "degraded"  # microphone lost
    assert _check(reporter) == NOT_SERVING
    daemon.state = "running"
    assert _check(reporter) == SERVING
    daemon.stopping = True
    assert _check(reporter) == NOT_SERVING


def test_shutdown_is_final():
    daemon = FakeDaemon()
    daemon.serving = True
    reporter = HealthReporter(daemon)
    assert _check(reporter) == SERVING
    reporter.shutdown()
    assert _check(reporter) == NOT_SERVING
    assert _check(reporter, "") == NOT_SERVING


def test_a_failing_status_is_not_serving_and_the_next_good_one_serves_again():
    daemon = FakeDaemon()
    daemon.serving = True
    reporter = HealthReporter(daemon)
    good = daemon.status
    daemon.status = lambda: 1 / 0
    assert _check(reporter) == NOT_SERVING
    daemon.status = good
    assert _check(reporter) == SERVING
