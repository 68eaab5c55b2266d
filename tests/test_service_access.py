"""scripts/check-service-access.sh (run by install-service.sh): it names the path that keeps the
service's user from running kwsd, such as an interpreter inside a private (0700) directory, and
passes when everything is readable."""

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "check-service-access.sh"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not (shutil.which("useradd") and shutil.which("setpriv")),
    reason="needs root, useradd and setpriv (it switches to another user)")


def _check(user: str, python: str, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), "--user", user, "--python", python, "--config",
                           str(config)], capture_output=True, text=True, timeout=300)


@pytest.fixture
def config(random_bundle, tmp_path) -> Path:
    path = tmp_path / "kwsd.toml"
    path.write_text(f'[model]\npath = "{random_bundle}"\n')
    path.chmod(0o644)
    return path


def test_everything_readable_passes(config, random_bundle):
    result = _check("root", sys.executable, config)
    assert result.returncode == 0, result.stderr
    assert "ok:" in result.stdout and str(random_bundle) in result.stdout


def test_interpreter_in_a_private_directory_is_named(config):
    user = "kwsdc" + uuid.uuid4().hex[:8]
    private = Path(tempfile.mkdtemp(prefix="kwsd-home-"))  # 0700, like a private home
    subprocess.run(["useradd", "-M", "-N", "-g", "nogroup", "-s", "/usr/sbin/nologin", user],
                   check=True, capture_output=True)
    try:
        (private / "bin").mkdir()
        shutil.copy2("/bin/true", private / "bin" / "python")
        result = _check(user, str(private / "bin" / "python"), config)
        assert result.returncode == 1, result.stdout
        assert f"cannot run the interpreter {private}/bin/python: blocked at {private} " \
               "(directory, mode 700)" in result.stderr
    finally:
        subprocess.run(["userdel", user], capture_output=True)
        shutil.rmtree(private, ignore_errors=True)
