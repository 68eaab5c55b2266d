import faulthandler
import signal

import pytest

from .virtual_mic import VirtualMic, available

AUDIO_TEST_TIMEOUT_S = 180


@pytest.fixture(autouse=True)
def audio_test_timeout():
    """Every audio test gets a deadline: a PyAudio read can spin forever when a source sends
    nothing. SIGALRM fails the test; faulthandler kills the run if even that cannot happen."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"audio test exceeded {AUDIO_TEST_TIMEOUT_S} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(AUDIO_TEST_TIMEOUT_S)
    faulthandler.dump_traceback_later(AUDIO_TEST_TIMEOUT_S + 60, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture()
def virtual_mic(tmp_path, monkeypatch):
    """A running private PulseAudio whose default source is fed by the test."""
    why = available()
    if why:
        pytest.fail(why)
    mic = VirtualMic(tmp_path / "vmic")
    mic.start()
    for key, value in mic.env().items():
        monkeypatch.setenv(key, value)
    yield mic
    mic.stop()


@pytest.fixture(scope="session")
def random_bundle_path(tmp_path_factory):
    """A demo-size bundle with random weights: the live path runs, detections are arbitrary."""
    from kwsd.model.bundle import make_random_bundle

    return make_random_bundle(tmp_path_factory.mktemp("bundle") / "random",
                              keywords=("yes", "no"), seed=1)
