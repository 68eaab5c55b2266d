"""Security: Unix socket permissions against a second uid, TCP without TLS refused unless
explicitly insecure on loopback, tokens (missing, wrong, fuzzed -> UNAUTHENTICATED), no RPC
response can carry raw audio, logs never contain audio, model files are never unpickled."""

from __future__ import annotations

import ast
import base64
import grp
import logging
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.api.v1 import kwsd_pb2_grpc as pb_grpc
from running_daemon import start

from .conftest import REPO
from .server import detect_config, make_config

TOKEN = "reliability-token-0123456789"
SILENCE: dict = {}  # the daemons' own source: a second of silence in a loop (set below)


@pytest.fixture(scope="module", autouse=True)
def _silence_source(tmp_path_factory):
    from kwsd.audio.audiofile import write_wav_16k

    wav = tmp_path_factory.mktemp("wav") / "silence.wav"
    write_wav_16k(wav, np.zeros(16000, np.int16))
    SILENCE.update(source="wav", wav=str(wav), realtime=True, loop=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Unix socket permissions with a second uid ----------------------------------------------
#
# The second user must be able to start its client wherever this checkout lives: a clone in a
# private directory (a home of mode 0700, `mktemp -d`) is unreadable to it, and so may be the
# interpreter (pyenv under /root). So the client does not run from the checkout: its script and
# the modules it imports are copied into a world-readable kit under /tmp (removed afterwards), it
# runs isolated (-I -S: nothing from the checkout, the venv or the user's site), and the
# interpreter is one the stranger is shown to be able to start. A client that cannot start, or
# that ends in any way but the two outcomes below, fails the test with its stderr: it never
# counts as "refused" or as "allowed".

PROBE_REFUSED = 10  # connect() on the socket failed: stdout "REFUSED <errno> <name>"
PROBE_ALLOWED = 11  # connected and GetModel answered: stdout "ALLOWED <model_id>"
PROBE_RPC_FAILED = 12  # connected, but the RPC failed: stdout "RPC-FAILED <code> <details>"

PROBE = f"""\
REFUSED, ALLOWED, RPC_FAILED = {PROBE_REFUSED}, {PROBE_ALLOWED}, {PROBE_RPC_FAILED}
import errno, os, socket, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the kit (-I leaves it out)
import grpc
from kwsd.api.v1 import kwsd_pb2 as pb, kwsd_pb2_grpc as pb_grpc
if sys.argv[1] == "--check":
    print("READY", grpc.__file__, pb.__file__, flush=True); sys.exit(0)
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(path)
except OSError as exc:
    print("REFUSED", exc.errno, errno.errorcode.get(exc.errno, "?"), flush=True)
    sys.exit(REFUSED)
finally:
    s.close()
with grpc.insecure_channel("unix:" + path) as ch:
    try:
        reply = pb_grpc.KwsdStub(ch).GetModel(pb.GetModelRequest(), timeout=30)
    except grpc.RpcError as exc:
        print("RPC-FAILED", exc.code().name, exc.details(), flush=True); sys.exit(RPC_FAILED)
print("ALLOWED", reply.model_id, flush=True)
sys.exit(ALLOWED)
"""


def _probe_imports() -> tuple[dict[str, str], list[str]]:
    """({module: file}, search roots) of what PROBE imports, loaded the way the stranger will
    load them: an isolated interpreter with only this checkout's package and this environment's
    site directories on its path."""
    import json
    import site

    roots = [str(REPO / "daemon"), *site.getsitepackages()]
    code = ("import json, sys\n"
            f"sys.path[0:0] = {roots!r}\n"
            "import grpc\n"
            "from kwsd.api.v1 import kwsd_pb2, kwsd_pb2_grpc\n"
            "print(json.dumps({n: getattr(m, '__file__', None) or '' "
            "for n, m in list(sys.modules.items())}))\n")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"cannot import the probe's modules here: {proc.stderr}"
    return {name: file for name, file in json.loads(proc.stdout).items() if file}, roots


def build_probe_kit(kit: Path) -> Path:
    """Copy the probe and what it imports from outside the standard library into `kit`
    (world-readable); returns the script. kwsd: the imported files only; other packages: their
    whole top-level package (data files, extension modules), or the namespace package's
    imported sub-package (google/protobuf)."""
    modules, roots = _probe_imports()
    daemon = str(REPO / "daemon")
    copied: set[Path] = set()
    for file in modules.values():
        path = Path(file)
        root = next((Path(r) for r in roots if path.is_relative_to(r)), None)
        if root is None:
            continue  # the standard library: the stranger's interpreter has its own
        rel = path.relative_to(root)
        if str(root) == daemon:
            unit = rel  # this checkout's package: just the files the probe imports
        else:  # the outermost regular package (a namespace package has no __init__.py)
            unit = Path(rel.parts[0])
            for i in range(1, len(rel.parts)):
                if (root / Path(*rel.parts[:i]) / "__init__.py").exists():
                    break
                unit = Path(*rel.parts[:i + 1])
        if unit in copied:
            continue
        copied.add(unit)
        dest = kit / unit
        dest.parent.mkdir(parents=True, exist_ok=True)
        if (root / unit).is_dir():
            shutil.copytree(root / unit, dest, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(root / unit, dest)
    script = kit / "probe.py"
    script.write_text(PROBE)
    for path in [kit, *kit.rglob("*")]:
        path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    return script


def _as_user(user: str, groups: list[str], argv: list[str]) -> subprocess.CompletedProcess:
    pw = pwd.getpwnam(user)
    gids = ",".join(str(grp.getgrnam(g).gr_gid) for g in groups) or None
    cmd = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}"]
    cmd += [f"--groups={gids}"] if gids else ["--clear-groups"]
    return subprocess.run(cmd + argv, capture_output=True, text=True, timeout=120, cwd="/",
                          env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp",
                               "LANG": "C.UTF-8"})


def _interpreters() -> list[str]:
    """Interpreters of this Python version the stranger might be able to start, best first
    (the kit's extension modules are built for this version)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    found = [sys.executable, os.path.realpath(sys.executable),
             base := getattr(sys, "_base_executable", ""), os.path.realpath(base) if base else ""]
    found += [shutil.which(version, path=d) or "" for d in ("/usr/local/bin", "/usr/bin")]
    return list(dict.fromkeys(f for f in found if f))


@dataclass
class Stranger:
    """A throw-away user, its own group, and a client it is shown to be able to run."""

    user: str
    group: str
    python: str
    probe: Path


@pytest.fixture
def stranger():
    """A throw-away user and group (root only) with a client kit it can read; all removed
    afterwards. Fails (does not skip) when the user cannot start the client, saying why."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second user (useradd) and switch to it")
    if not (shutil.which("useradd") and shutil.which("setpriv")):
        pytest.skip("useradd/setpriv not installed")
    name = "kwsdt" + uuid.uuid4().hex[:8]
    kit = Path(tempfile.mkdtemp(prefix="kwsd-kit-", dir="/tmp"))
    subprocess.run(["groupadd", name + "g"], check=True, capture_output=True)
    subprocess.run(["useradd", "-M", "-N", "-g", "nogroup", "-s", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        probe = build_probe_kit(kit)
        tried = []
        for python in _interpreters():
            check = _as_user(name, [], [python, "-I", "-S", str(probe), "--check"])
            if check.returncode == 0 and check.stdout.startswith("READY"):
                # the kit's copies, not something else the interpreter found on its own
                assert all(f.startswith(str(kit)) for f in check.stdout.split()[1:]), \
                    check.stdout
                break
            tried.append(f"{python}: exit {check.returncode}: {check.stderr.strip()[-600:]}")
        else:
            pytest.fail(f"the second user {name} cannot start the client (kit {kit}, "
                        "world-readable), so the socket permissions cannot be checked; "
                        "interpreters tried:\n" + "\n".join(tried))
        yield Stranger(name, name + "g", python, probe)
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", name + "g"], capture_output=True)
        shutil.rmtree(kit, ignore_errors=True)


def _connect_as(stranger: Stranger, path: str, groups: list[str]) -> str:
    """'refused <errno name>' or 'allowed <model id>'; any other end fails the test."""
    proc = _as_user(stranger.user, groups,
                    [stranger.python, "-I", "-S", str(stranger.probe), path])
    words = proc.stdout.split()
    if proc.returncode == PROBE_REFUSED and words[:1] == ["REFUSED"]:
        return f"refused {words[2]}"
    if proc.returncode == PROBE_ALLOWED and words[:1] == ["ALLOWED"]:
        return f"allowed {words[1]}"
    pytest.fail(f"the client of {stranger.user} (groups {groups}) neither was refused nor "
                f"connected: exit {proc.returncode}, stdout {proc.stdout!r}, "
                f"stderr:\n{proc.stderr[-3000:]}")


def test_unix_socket_refuses_another_uid_without_the_group(stranger, random_bundle):
    group = stranger.group
    top = Path(tempfile.mkdtemp(prefix="kwsd-p-", dir="/tmp"))
    top.chmod(0o755)  # the stranger may reach the daemon's directory; the daemon decides
    try:
        # 1. Default: private directory (0700) and socket (0660, root's group).
        running = start(make_config(random_bundle, top / "run" / "kwsd.sock", None,
                                    audio=SILENCE))
        try:
            sock = str(top / "run" / "kwsd.sock")
            assert _connect_as(stranger, sock, []) == "refused EACCES"
            # Even with the directory opened up, the socket's own mode refuses the stranger.
            (top / "run").chmod(0o755)
            assert _connect_as(stranger, sock, []) == "refused EACCES"
            assert _connect_as(stranger, sock, [group]) == "refused EACCES"  # not its group
        finally:
            running.stop()
        # 2. socket_group: members of the group get in, the stranger without it does not.
        running = start(make_config(random_bundle, top / "grp" / "kwsd.sock", None,
                                    audio=SILENCE, api={"socket_group": group}))
        try:
            sock = str(top / "grp" / "kwsd.sock")
            assert _connect_as(stranger, sock, []) == "refused EACCES"
            assert _connect_as(stranger, sock, [group]) == \
                f"allowed {running.daemon.bundle.model_id}"
        finally:
            running.stop()
    finally:
        shutil.rmtree(top, ignore_errors=True)


# --- TCP: TLS or explicit insecure loopback; tokens -------------------------------------------

@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_plain_tcp_off_loopback_is_refused(random_bundle, sock_dir, host):
    from kwsd.server.transport import TransportError

    tcp = f"[{host}]:{free_port()}" if ":" in host else f"{host}:{free_port()}"
    config = make_config(random_bundle, sock_dir / "s", None, audio=SILENCE,
                         api={"tcp": tcp, "insecure_loopback": True})
    with pytest.raises(TransportError) as info:
        start(config)
    assert "tcp" in str(info.value) or "plain TCP" in str(info.value)


def test_plain_tcp_on_loopback_needs_insecure_loopback(random_bundle, sock_dir):
    from kwsd.server.transport import TransportError

    config = make_config(random_bundle, sock_dir / "s", None, audio=SILENCE,
                         api={"tcp": f"127.0.0.1:{free_port()}"})
    with pytest.raises(TransportError) as info:
        start(config)
    assert "insecure_loopback" in str(info.value)


@pytest.fixture(scope="module")
def tls_server(random_bundle, tmp_path_factory):
    sys.path.insert(0, str(REPO / "tests"))
    from api.certs import make_certs

    certs = make_certs(tmp_path_factory.mktemp("certs"))
    sock_dir = Path(tempfile.mkdtemp(prefix="kwsd-s-", dir="/tmp"))
    port = free_port()
    running = start(make_config(random_bundle, sock_dir / "kwsd.sock", None,
                                audio=SILENCE,
                                api={"tcp": f"127.0.0.1:{port}", "token": TOKEN,
                                     "tls_cert": str(certs.server_cert),
                                     "tls_key": str(certs.server_key)}))
    yield running, port, certs
    running.stop()
    shutil.rmtree(sock_dir, ignore_errors=True)


def test_plain_client_cannot_talk_to_the_tls_port(tls_server):
    _, port, _ = tls_server
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.KwsdStub(ch).GetModel(pb.GetModelRequest(), timeout=10,
                                          metadata=[("authorization", f"Bearer {TOKEN}")])
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def _every_rpc(stub, metadata):
    """Call each RPC once; returns {rpc: code}."""
    codes = {}
    calls = {
        "GetModel": lambda: stub.GetModel(pb.GetModelRequest(), timeout=10, metadata=metadata),
        "GetStatus": lambda: stub.GetStatus(pb.GetStatusRequest(), timeout=10,
                                            metadata=metadata),
        "Subscribe": lambda: next(iter(stub.Subscribe(pb.SubscribeRequest(), timeout=1,
                                                      metadata=metadata))),
        "Detect": lambda: list(stub.Detect(iter([detect_config(),
                                                 pb.DetectRequest(audio=bytes(320))]),
                                           timeout=30, metadata=metadata)),
    }
    for name, call in calls.items():
        try:
            call()
            codes[name] = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            codes[name] = exc.code()
    return codes


def test_tokens_over_tls(request, tls_server):
    _, port, certs = tls_server
    creds = grpc.ssl_channel_credentials(root_certificates=certs.ca.read_bytes())
    with grpc.secure_channel(f"localhost:{port}", creds) as ch:
        stub = pb_grpc.KwsdStub(ch)
        unauth = grpc.StatusCode.UNAUTHENTICATED
        assert set(_every_rpc(stub, None).values()) == {unauth}
        assert set(_every_rpc(stub, [("authorization", "Bearer wrong")]).values()) == {unauth}
        good = _every_rpc(stub, [("authorization", f"Bearer {TOKEN}")])
        assert good["GetModel"] == good["GetStatus"] == good["Detect"] == grpc.StatusCode.OK
        assert good["Subscribe"] == grpc.StatusCode.DEADLINE_EXCEEDED  # open, no events

        slow = request.config.getoption("--run-slow")

        @settings(max_examples=300 if slow else 30, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck), derandomize=not slow)
        @given(st.one_of(
            st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=60),
            st.sampled_from([TOKEN[:-1], TOKEN + "x", TOKEN.upper(), " " + TOKEN,
                             "Bearer", "", TOKEN[1:]])),
            st.sampled_from(["Bearer ", "bearer ", "", "Basic "]))
        def check(token, scheme):
            value = (scheme + token).strip()
            md = [("authorization", value)] if value else None
            try:
                stub.GetModel(pb.GetModelRequest(), timeout=10, metadata=md)
                code = grpc.StatusCode.OK
            except grpc.RpcError as exc:
                code = exc.code()
            if value == f"Bearer {TOKEN}":  # exactly what the docs say to send
                assert code == grpc.StatusCode.OK
            else:
                assert code == unauth, (value, code)
        check()


def test_unix_socket_of_a_token_server_needs_no_token(tls_server):
    running, _, _ = tls_server
    with grpc.insecure_channel(running.address) as ch:
        assert pb_grpc.KwsdStub(ch).GetModel(pb.GetModelRequest(), timeout=10).model_id


# --- no raw audio out ---------------------------------------------------------------------------

def _bytes_fields(message, seen=None) -> list[str]:
    seen = set() if seen is None else seen
    if message.full_name in seen:
        return []
    seen.add(message.full_name)
    found = []
    for field in message.fields:
        if field.type == FieldDescriptor.TYPE_BYTES:
            found.append(f"{message.full_name}.{field.name}")
        if field.message_type is not None:
            found += _bytes_fields(field.message_type, seen)
    return found


def test_no_response_message_can_carry_bytes():
    """Walks every response type of kwsd.v1 (nested messages, oneofs, maps): no bytes field,
    so no RPC can return raw audio. Requests may (Detect's audio)."""
    service = pb.DESCRIPTOR.services_by_name["Kwsd"]
    # a new RPC must be added here on purpose, after checking what it returns
    assert {m.name for m in service.methods} == {"Subscribe", "Detect", "GetModel", "GetStatus",
                                                 "EnrollKeyword", "ListKeywords",
                                                 "DeleteKeyword"}
    for method in service.methods:
        assert _bytes_fields(method.output_type) == [], method.name
    # the walk does find bytes where they are: the audio clients send in
    assert {m.name: _bytes_fields(m.input_type) for m in service.methods
            if _bytes_fields(m.input_type)} == {"Detect": ["kwsd.v1.DetectRequest.audio"],
                                                "EnrollKeyword": ["kwsd.v1.EnrollRequest.example"]}


# --- logs never contain audio -----------------------------------------------------------------

def _marker_audio() -> tuple[bytes, list[str]]:
    """PCM whose bytes spell a marker; returns it and the forms it could leak in."""
    raw = b"KWSDSECRETAUDIO!" * 200
    samples = np.frombuffer(raw, "<i2")
    forms = ["SECRETAUDIO", raw[:24].hex(), base64.b64encode(raw[:48]).decode()[:24],
             " ".join(str(int(x)) for x in samples[:3]),
             ", ".join(str(int(x)) for x in samples[:3]), repr(raw[:12])[2:-1]]
    return raw, forms


def test_logs_never_contain_audio(random_bundle, sock_dir, caplog, tmp_path):
    """At DEBUG, a daemon given marker audio through Detect (good and malformed), through raw
    wire garbage, and through its own source logs none of it, in any encoding."""
    from kwsd.audio.audiofile import write_wav_16k

    raw, forms = _marker_audio()
    wav = tmp_path / "marker.wav"
    write_wav_16k(wav, np.frombuffer(raw, "<i2"))
    caplog.set_level(logging.DEBUG)
    running = start(make_config(random_bundle, sock_dir / "kwsd.sock", wav, realtime=False,
                                loop=False, api={"max_chunk_bytes": 2048}))
    try:
        with grpc.insecure_channel(running.address) as ch:
            stub = pb_grpc.KwsdStub(ch)
            chunks = [raw[i:i + 1600] for i in range(0, len(raw), 1600)]
            list(stub.Detect(iter([detect_config(label="leak")] +
                                  [pb.DetectRequest(audio=c) for c in chunks]), timeout=60))
            for bad in ([pb.DetectRequest(audio=raw[:1601])],              # odd bytes
                        [pb.DetectRequest(audio=raw[:3000])],              # chunk too long
                        [pb.DetectRequest(audio=raw * 3)]):                # message too big
                with pytest.raises(grpc.RpcError):
                    list(stub.Detect(iter([detect_config()] + bad), timeout=30))
            with pytest.raises(grpc.RpcError):  # audio before config
                list(stub.Detect(iter([pb.DetectRequest(audio=raw[:1600])]), timeout=30))
            garbage = ch.stream_stream("/kwsd.v1.Kwsd/Detect", request_serializer=None,
                                       response_deserializer=None)
            with pytest.raises(grpc.RpcError):
                list(garbage(iter([b"\xff" + raw[:500]]), timeout=30))
        running.daemon.wait_sources(60)
    finally:
        running.stop()
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert caplog.records, "nothing was logged at all: the check would be vacuous"
    for form in forms:
        assert form not in text, f"audio leaked into the log as {form!r}"


def test_serve_log_never_contains_audio(random_bundle, tmp_path, sock_dir):
    """The same for `kwsd serve --log-level debug` reading marker audio from stdin."""
    raw, forms = _marker_audio()
    env = dict(os.environ, PYTHONPATH=str(REPO / "daemon"))
    proc = subprocess.run(
        [sys.executable, "-m", "kwsd", "--log-level", "debug", "serve", "--model",
         str(random_bundle), "--stdin", "--exit-at-end", "--socket",
         str(sock_dir / "kwsd.sock"), "--print", "--print-speech"],
        input=raw * 10, env=env, capture_output=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
    assert "stopped" in out
    for form in forms:
        assert form not in out, f"audio leaked into the output as {form!r}"


# --- model files are never unpickled --------------------------------------------------------

UNPICKLER_ALLOWED = {"daemon/kwsd/commands/convert_s3prl.py"}


def test_no_unpickling_outside_the_converter():
    """A source scan of the package: pickle only in the explicit converter, every other
    torch.load weights-only, no np.load(allow_pickle=True)."""
    problems = []
    for path in sorted((REPO / "daemon" / "kwsd").rglob("*.py")):
        rel = str(path.relative_to(REPO))
        tree = ast.parse(path.read_text(), rel)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                if any(n.split(".")[0] in ("pickle", "dill", "cloudpickle", "joblib", "shelve",
                                           "marshal") for n in names) \
                        and rel not in UNPICKLER_ALLOWED:
                    problems.append(f"{rel}:{node.lineno} imports an unpickler")
            if isinstance(node, ast.Call):
                fn = ast.unparse(node.func)
                kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
                if fn.endswith("torch.load") and kw.get("weights_only") != "True" \
                        and rel not in UNPICKLER_ALLOWED:
                    problems.append(f"{rel}:{node.lineno} torch.load without weights_only=True")
                if fn.endswith("np.load") and kw.get("allow_pickle", "False") != "False":
                    problems.append(f"{rel}:{node.lineno} np.load(allow_pickle=...)")
    assert problems == []


class _Trap:
    """Unpickling this creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# torch warns that the hand-made legacy file uses pickle protocol 4: expected of this input
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("fmt", ["legacy pickle", "torch zip"])
def test_converter_placeholder_unpickler_runs_no_code(fmt, tmp_path):
    """The one unpickling place, `kwsd convert-s3prl --allow-unknown-objects`, must not run a
    checkpoint's code either. It did for non-zip files: torch reads their header records with
    `pickle_module.load`, which was the unrestricted pickle.load (fixed with this test)."""
    import pickle

    import torch
    from kwsd.commands.convert_s3prl import read_checkpoint

    marker = tmp_path / "UNPICKLED"
    payload = {"Distiller": {"w": _Trap(marker)}, "Config": {"distiller": {}}}
    path = tmp_path / "trap.ckpt"
    if fmt == "legacy pickle":
        path.write_bytes(pickle.dumps(_Trap(marker)) + pickle.dumps(payload))
    else:
        torch.save(payload, path)
    try:
        ckpt = read_checkpoint(path, allow_unknown_objects=True)
    except SystemExit as exc:
        assert "cannot read" in str(exc)
    else:
        assert type(ckpt["Distiller"]["w"]).__module__.startswith("kwsd.placeholder")
    assert not marker.exists(), "the converter ran code from the checkpoint"
    with pytest.raises(SystemExit):  # and without the flag it refuses outright
        read_checkpoint(path, allow_unknown_objects=False)
    assert not marker.exists()
