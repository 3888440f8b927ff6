"""Attacks through the environment build (issue 22): a pushed requirement that names a package whose build
backend probes the machine. Named by a ``file:`` path or an ``@ file:`` reference, it is refused before any
build; allowed by the machine's owner (``allow_sources``), it is built from source in the build sandbox,
unprivileged, with nothing written outside its environment and nothing reached but the package index.

The backend writes a marker wherever it can (the host's /tmp, the workspace, the checkout, $HOME), reads
/etc/shadow, connects to a server of this test (on loopback and on this machine's own address) directly and
through the proxy it is given; what it managed goes into the wheel it builds, which the trial then reads.
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import threading
import uuid
from pathlib import Path

import pytest

from tests.support.attacks import pushed, run_pushed, runs, trial_of, work_file

pytestmark = pytest.mark.slow

BACKEND = """
import base64, hashlib, json, os, socket, zipfile
TARGETS = {targets!r}
SERVER = {server!r}


def _probe():
    r = {{"uid": os.getuid(), "euid": os.geteuid(), "wrote": [], "reached": [], "shadow": False}}
    for path in TARGETS:
        try:
            with open(path, "w") as fh:
                fh.write("evilprobe was here")
            r["wrote"].append(path)
        except OSError:
            pass
    try:
        open("/etc/shadow").read()
        r["shadow"] = True
    except OSError:
        pass
    for host, port in SERVER:
        try:
            socket.create_connection((host, port), timeout=3).close()
            r["reached"].append(host)
        except OSError:
            pass
    proxy = os.environ.get("HTTPS_PROXY", "").rsplit("/", 1)[-1]
    if proxy:
        for host, port in SERVER:
            try:
                s = socket.create_connection((proxy.split(":")[0], int(proxy.split(":")[1])), timeout=3)
                s.sendall(("CONNECT %s:%d HTTP/1.1\\r\\n\\r\\n" % (host, port)).encode())
                if b" 200 " in s.recv(100):
                    r["reached"].append("proxy:" + host)
                s.close()
            except OSError:
                pass
    return r


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def build_sdist(sdist_directory, config_settings=None):
    raise OSError("no sdist")


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    report = repr(_probe())
    name = "evilprobe-1.0-py3-none-any.whl"
    files = {{
        "evilprobe/__init__.py": "REPORT = %s\\n" % report,
        "evilprobe-1.0.dist-info/METADATA": "Metadata-Version: 2.1\\nName: evilprobe\\nVersion: 1.0\\n",
        "evilprobe-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: evil\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }}
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
            record.append("%s,sha256=%s,%d" % (path, digest, len(text.encode())))
        record.append("evilprobe-1.0.dist-info/RECORD,,")
        z.writestr("evilprobe-1.0.dist-info/RECORD", "\\n".join(record) + "\\n")
    return name
"""
PYPROJECT = """
[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]

[project]
name = "evilprobe"
version = "1.0"
"""
READS_REPORT = 'import json, evilprobe\nopen("report.json", "w").write(json.dumps(evilprobe.REPORT))\n'


class Listener:
    """A TCP server on every address of this machine that records who connected."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("0.0.0.0", 0))  # noqa: S104 (the build must not reach it on any address)
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.peers: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer[0])
            conn.close()


def own_address() -> str:
    """This machine's own (non-loopback) address: a UDP socket 'connected' sends nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: only the route is looked up
        return str(s.getsockname()[0])


def sdist(backend: str) -> bytes:
    """evilprobe-1.0.tar.gz: an sdist whose in-tree build backend is ``backend``."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, text in {
            "pyproject.toml": PYPROJECT,
            "backend.py": backend,
            "PKG-INFO": "Name: evilprobe\n",
        }.items():
            data = text.encode()
            info = tarfile.TarInfo(f"evilprobe-1.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def runtime(request):
    if request.param == "docker":
        request.getfixturevalue("docker_images")
    return request.param


@pytest.fixture
def probe(tmp_path):
    """The probing package's backend source, the places it writes to and the server it tries to reach."""
    marker = f"evilprobe-{uuid.uuid4().hex[:8]}"
    workspace, checkout = tmp_path / "ws", tmp_path / "evil"
    targets = [
        f"/tmp/{marker}",  # noqa: S108 (the host's /tmp: the build's own is private)
        str(workspace / marker),
        str(workspace / "envs" / marker),
        str(checkout / marker),
        str(Path.home() / marker),
    ]
    listener = Listener()
    server = [("127.0.0.1", listener.port), (own_address(), listener.port)]
    backend = BACKEND.format(targets=targets, server=server)
    yield {"backend": backend, "targets": targets, "listener": listener, "workspace": workspace}
    for target in targets:
        Path(target).unlink(missing_ok=True)
    listener.sock.close()


def nothing_written(probe: dict) -> None:
    assert [t for t in probe["targets"] if Path(t).exists()] == []


@pytest.mark.parametrize(
    "line",
    [
        "evilprobe @ file:vendor/evilprobe-1.0.tar.gz",
        "./vendor/evilprobe-1.0.tar.gz",
        "evilprobe @ file://{checkout}/vendor/evilprobe-1.0.tar.gz",
        "-e ./vendor/evilprobe",
    ],
)
def test_a_requirement_naming_a_local_package_is_refused_before_any_build(tmp_path, runtime, probe, line):
    checkout = tmp_path / "evil"
    files = {
        "vendor/evilprobe-1.0.tar.gz": "",
        "vendor/evilprobe/backend.py": probe["backend"],
        "vendor/evilprobe/pyproject.toml": PYPROJECT,
        "requirements.txt": "numpy\n" + line.format(checkout=checkout) + "\n",
    }
    repo = pushed(tmp_path, "evil", READS_REPORT, files)
    (repo / "vendor/evilprobe-1.0.tar.gz").write_bytes(sdist(probe["backend"]))
    done = run_pushed(repo, probe["workspace"], runtime)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "requirements.txt:2: " in done.stderr and " names " in done.stderr, done.stderr
    run = runs(probe["workspace"])[0]
    assert run["trials"] == 0
    nothing_written(probe)
    assert probe["listener"].peers == []


def test_an_allowed_vendored_sdist_is_built_in_the_sandbox_unprivileged_and_offline(tmp_path, runtime, probe):
    repo = pushed(
        tmp_path,
        "evil",
        READS_REPORT,
        {"requirements.txt": "evilprobe @ file:vendor/evilprobe-1.0.tar.gz\n", "vendor/.keep": ""},
    )
    (repo / "vendor/evilprobe-1.0.tar.gz").write_bytes(sdist(probe["backend"]))
    from tests.support.repos import git

    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "vendor the sdist")
    owner = tmp_path / "owner.toml"
    owner.write_text('allow_sources = ["vendor/*.tar.gz"]\n')
    done = run_pushed(repo, probe["workspace"], runtime, env={"MLOPS_CONFIG": str(owner)})
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "built from source (no wheel), in the sandbox: evilprobe" in done.stdout, done.stdout
    run = runs(probe["workspace"])[0]
    assert trial_of(probe["workspace"], run)["status"] == "succeeded", done.stdout
    report = json.loads(work_file(probe["workspace"], run, "report.json") or "{}")
    assert report, "the backend did not run"
    assert report["uid"] != 0 and report["euid"] != 0  # unprivileged
    assert report["shadow"] is False
    assert report["reached"] == [] and probe["listener"].peers == []  # not directly, not through the proxy
    nothing_written(probe)  # its private /tmp only
    assert [w for w in report["wrote"] if not w.startswith("/tmp/")] == []


def test_the_build_proxy_lets_through_the_index_only(tmp_path):
    from mlops.envs.proxy import IndexProxy

    listener = Listener()
    with IndexProxy(tmp_path / "p", {("localhost", 1)}) as proxy:
        for target in (f"127.0.0.1:{listener.port}", f"{own_address()}:{listener.port}"):
            client = socket.socket(socket.AF_UNIX)
            client.connect(str(proxy.socket))
            client.sendall(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
            assert client.recv(100).startswith(b"HTTP/1.1 403")
            client.close()
        assert proxy.refused == {f"127.0.0.1:{listener.port}", f"{own_address()}:{listener.port}"}
    assert listener.peers == []
    allowed = IndexProxy(tmp_path / "q", {("127.0.0.1", listener.port)})
    with allowed:
        client = socket.socket(socket.AF_UNIX)
        client.connect(str(allowed.socket))
        client.sendall(f"CONNECT 127.0.0.1:{listener.port} HTTP/1.1\r\n\r\n".encode())
        assert client.recv(100).startswith(b"HTTP/1.1 200")  # the proof the proxy does connect
        client.close()


def test_the_allow_list_is_the_configured_index(tmp_path):
    from mlops.envs.proxy import index_hosts

    hosts = index_hosts(
        {"UV_INDEX_URL": "https://mirror.example:8443/simple", "UV_FIND_LINKS": "/opt/wheels"}
    )
    assert hosts == {("mirror.example", 8443)}
