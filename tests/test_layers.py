"""Which part of kwsd may import which: the daemon (server, engine, model, audio, ...) never
depends on the client library; what both sides need (address parsing) is in kwsd.address."""

from __future__ import annotations

import ast
from pathlib import Path

import kwsd

PACKAGE = Path(kwsd.__file__).resolve().parent
CLIENT_USERS = {"client", "commands"}  # the client library itself and the CLI front-ends


def _imported_modules(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (kwsd uses absolute imports)"
            out.add(node.module or "")
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_only_the_cli_imports_the_client():
    files = [p for p in PACKAGE.rglob("*.py")
             if p.relative_to(PACKAGE).parts[0] not in CLIENT_USERS]
    assert any(p.parent.name == "server" for p in files)
    for path in files:
        bad = sorted(m for m in _imported_modules(path)
                     if m == "kwsd.client" or m.startswith("kwsd.client."))
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_server_and_client_share_one_address_parser():
    for side in ("server/transport.py", "client/channel.py"):
        assert "kwsd.address.parse_target" in _imported_modules(PACKAGE / side)
