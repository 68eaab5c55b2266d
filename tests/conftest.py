import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from running_daemon import KEYWORDS
from tiny_corpus import tiny_corpus  # noqa: F401  (a fixture for the stage suites)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="run long (soak/load) tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long test: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} is missing: clone the repo beside ../shared")
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
