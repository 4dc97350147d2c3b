"""The set-ups' registry proxy: its decisions as tables, and real CONNECTs on its socket."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from autonoma.workflow.registry_proxy import (
    REGISTRIES,
    RegistryProxy,
    allowed,
    parse_connect,
    upstream_of,
)


@pytest.mark.parametrize(
    ("host", "port", "allow", "expected"),
    [
        ("pypi.org", 443, REGISTRIES, True),
        ("PyPI.org.", 443, REGISTRIES, True),
        ("files.pythonhosted.org", 443, REGISTRIES, True),
        ("registry.npmjs.org", 443, REGISTRIES, True),
        ("pypi.org", 22, REGISTRIES, False),
        ("pypi.org", 80, REGISTRIES, False),
        ("example.com", 443, REGISTRIES, False),
        ("evilpypi.org", 443, REGISTRIES, False),
        ("pypi.org.evil.com", 443, REGISTRIES, False),
        ("sub.pypi.org", 443, REGISTRIES, True),
        ("127.0.0.1", 443, REGISTRIES, False),
        ("127.0.0.1", 5000, ("127.0.0.1:5000",), True),
        ("127.0.0.1", 5001, ("127.0.0.1:5000",), False),
        ("sub.127.0.0.1", 5000, ("127.0.0.1:5000",), False),
        ("", 443, ("",), False),
        ("git.example.com", 443, ("example.com",), True),
    ],
)
def test_what_passes(host: str, port: int, allow: tuple[str, ...], expected: bool) -> None:
    assert allowed(host, port, allow) is expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org\r\n\r\n", ("pypi.org", 443)),
        (b"CONNECT [::1]:8080 HTTP/1.0\r\n\r\n", ("::1", 8080)),
        (b"GET http://pypi.org/ HTTP/1.1\r\n\r\n", None),
        (b"CONNECT pypi.org HTTP/1.1\r\n\r\n", None),
        (b"CONNECT pypi.org:0 HTTP/1.1\r\n\r\n", None),
        (b"CONNECT pypi.org:99999 HTTP/1.1\r\n\r\n", None),
        (b"CONNECT pypi.org:443 SSH/2\r\n\r\n", None),
        (b"\xff\xfe\r\n\r\n", None),
    ],
)
def test_parse_connect(head: bytes, expected: tuple[str, int] | None) -> None:
    assert parse_connect(head) == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"https_proxy": "http://127.0.0.1:3128"}, ("127.0.0.1", 3128)),
        ({"HTTPS_PROXY": "http://proxy.corp:8080/"}, ("proxy.corp", 8080)),
        ({"http_proxy": "proxy.corp:81"}, ("proxy.corp", 81)),
        ({"HTTP_PROXY": "http://proxy.corp"}, ("proxy.corp", 80)),
        ({"https_proxy": "socks5://127.0.0.1:1080"}, None),
        ({"https_proxy": "http://h:notaport"}, None),
        ({"https_proxy": "", "HTTPS_PROXY": "http://b:2"}, ("b", 2)),
    ],
)
def test_upstream_of(env: dict[str, str], expected: tuple[str, int] | None) -> None:
    assert upstream_of(env) == expected


class FakeUpstream:
    """An egress proxy on the host's loopback: records each request line, answers 200,
    then echoes what the tunnel carries."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.requests: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    byte = conn.recv(1)
                    if not byte:
                        break
                    head += byte
                self.requests.append(head.split(b"\r\n")[0].decode())
                conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
                data = conn.recv(1024)
                conn.sendall(b"echo: " + data)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    yield fake
    fake.server.close()


def ask(path: Path, target: str, payload: bytes = b"") -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(str(path))
        client.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        answer = client.recv(4096)
        if payload and b" 200 " in answer:
            client.sendall(payload)
            answer += client.recv(4096)
        return answer


def test_an_allowed_connect_goes_through_the_upstream_proxy(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    path = tmp_path / "p.sock"
    with RegistryProxy(path, REGISTRIES, ("127.0.0.1", upstream.port)) as proxy:
        answer = ask(path, "pypi.org:443", b"hello")
        assert answer.startswith(b"HTTP/1.1 200 Connection established\r\n\r\n")
        assert answer.endswith(b"echo: hello")
        refused = ask(path, "example.com:443")
        assert refused.startswith(b"HTTP/1.1 403 Forbidden")
        assert b"example.com:443 is not a package registry" in refused
    # The denied name never reached the upstream proxy.
    assert upstream.requests == ["CONNECT pypi.org:443 HTTP/1.1"]
    assert proxy.denied == ["example.com:443"]
    assert not path.exists()


def test_anything_but_connect_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.sock"
    with RegistryProxy(path, REGISTRIES), socket.socket(socket.AF_UNIX) as client:
        client.settimeout(10)
        client.connect(str(path))
        client.sendall(b"GET http://pypi.org/simple/ HTTP/1.1\r\nHost: pypi.org\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 405 Method Not Allowed")
