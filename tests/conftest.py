import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from running_daemon import KEYWORDS
from tiny_corpus import tiny_corpus  # noqa: F401  (a fixture for the stage suites)

REPO = Path(__file__).resolve().parents[1]
# The larger shared recording sets (real-dev, real-train): beside the clone in CI and on the
# project's machines, absent in a lone clone. The recordings every run needs are in tests/data.
SHARED_DATA = Path(os.environ.get("KWSD_SHARED_DATA") or REPO.parent / "shared" / "data")


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="run long (soak/load) tests")
    parser.addoption("--require-shared-data", action="store_true",
                     help="fail the shared_data tests when ../shared/data is missing instead "
                          "of skipping them (CI: .ci/run)")


def pytest_collection_modifyitems(config, items):
    # A test that takes the shared_data fixture is a shared_data test, marked or not.
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)
    if not SHARED_DATA.is_dir() and not config.getoption("--require-shared-data"):
        skip = pytest.mark.skip(reason=f"needs the shared recordings, {SHARED_DATA} is absent "
                                       "(runs in CI)")
        for item in items:
            if "shared_data" in item.keywords:
                item.add_marker(skip)
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long test: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $KWSD_SHARED_DATA): for shared_data tests only."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} is missing (--require-shared-data): put ../shared beside "
                    "the clone or set KWSD_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def random_bundle(tmp_path_factory) -> Path:
    """A demo-size bundle with random weights and the labels KEYWORDS (plumbing tests: any
    weights give identical events for identical audio)."""
    from kwsd.model.bundle import make_random_bundle

    return make_random_bundle(tmp_path_factory.mktemp("bundle") / "random", "demo", KEYWORDS,
                              seed=0)


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """Short path: a Unix socket path must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="kwsd-t-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
