import pytest


@pytest.fixture(scope="session")
def random_bundle_path(tmp_path_factory):
    """A demo-size bundle with random weights (valid, untrained) for engine tests."""
    from kwsd.model.bundle import make_random_bundle

    return make_random_bundle(tmp_path_factory.mktemp("bundle") / "random",
                              keywords=("yes", "no"), seed=1)


@pytest.fixture(scope="session")
def random_bundle(random_bundle_path):
    from kwsd.model.bundle import load_bundle

    return load_bundle(random_bundle_path)
