# ruff: noqa: F401, F811 — pytest fixtures imported from platform_env are used as parameters
"""Issue 12, point 3 (platform side): authenticate first, cap each route's body before reading.

The attack: a 400 MB body to /v1/heartbeat from someone on the network. Before the fix the
platform read all of it (memory 91 -> 880 MB) and then answered 422. Now an unauthenticated
request is answered 401 while the body is still being sent (the platform has read at most a
few socket buffers of it), and an authenticated one over the route's cap is 413 from the
declared length, or after the cap when streamed without one. The gzip cap holds too.
"""

from __future__ import annotations

import gzip
import socket
from pathlib import Path
from urllib.parse import urlparse

from tests.security.platform_env import County, county, sqlite_county

HUGE = 400 * 1024 * 1024
SENT_BEFORE_ANSWER = 2 * 1024 * 1024  # what we push before waiting for the verdict
ANSWER_WAIT_S = 30.0  # a bound on waiting for the answer, not a speed assertion


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def raw_request(county: County, path: str, headers: dict[str, str], body_bytes: int,
                chunked: bool = False) -> bytes:  # fmt: skip
    """Send the head and part of a huge body, then read whatever the server answers.

    The server must answer without the rest of the body: if it waited for all of it (the old
    behaviour), no answer comes and the read times out, failing the test."""
    url = urlparse(county.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=ANSWER_WAIT_S)
    try:
        head = [f"POST {path} HTTP/1.1", f"Host: {url.hostname}", "Content-Type: application/json"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {HUGE}")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        block = b"[" * 65536
        sent = 0
        try:
            while sent < body_bytes:
                sock.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block)
                sent += len(block)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: what we want
        answer = b""
        while not _complete(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer
    finally:
        sock.close()


def _complete(answer: bytes) -> bool:
    """Head and the whole body (by Content-Length) received."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split()[1])


def test_unauthenticated_huge_body_is_401_without_being_read(county: County) -> None:
    assert county.platform.proc is not None
    before = rss_mb(county.platform.proc.pid)
    paths = ("/v1/heartbeat", "/v1/records", "/v1/checkpoints", "/v1/admin/roster",
             "/v1/devices", "/v1/admin/points", "/v1/admin/devices/x/retire")  # fmt: skip
    for path in paths:
        answer = raw_request(county, path, {}, SENT_BEFORE_ANSWER)
        assert status_of(answer) == 401, (path, answer[:300])
        answer = raw_request(county, path, {"Authorization": "Bearer nonsense"}, SENT_BEFORE_ANSWER)
        assert status_of(answer) == 401, (path, answer[:300])
    # Nothing like the body was buffered (400 MB each; the old code grew by ~800 MB).
    assert rss_mb(county.platform.proc.pid) - before < 100


def test_authenticated_oversized_body_is_413(county: County) -> None:
    device = county.device()
    auth = {"Authorization": f"Bearer {device.token}"}
    answer = raw_request(county, "/v1/heartbeat", auth, SENT_BEFORE_ANSWER)
    assert status_of(answer) == 413, answer[:300]
    assert b"limit" in answer


def test_streamed_body_without_length_stops_at_the_cap(sqlite_county: County) -> None:
    county = sqlite_county
    device = county.device()
    assert county.platform.proc is not None
    before = rss_mb(county.platform.proc.pid)
    auth = {"Authorization": f"Bearer {device.token}"}
    # 2 MB streamed to the heartbeat (cap 256 kB): refused once past the cap.
    answer = raw_request(county, "/v1/heartbeat", auth, SENT_BEFORE_ANSWER, chunked=True)
    assert status_of(answer) == 413, answer[:300]
    # 64 MB streamed to /v1/records (cap 16 MB): refused, and the platform did not keep it.
    answer = raw_request(county, "/v1/records", auth, 64 * 1024 * 1024, chunked=True)
    assert status_of(answer) == 413, answer[:300]
    assert rss_mb(county.platform.proc.pid) - before < 100


def test_gzip_bomb_is_413_once_inflated(sqlite_county: County) -> None:
    county = sqlite_county
    device = county.device()
    bomb = gzip.compress(b" " * (200 * 1024 * 1024), compresslevel=9)  # ~200 kB on the wire
    r = county.http.post(
        "/v1/records",
        content=bomb,
        headers={
            "Authorization": f"Bearer {device.token}",
            "Content-Encoding": "gzip",
            "Content-Type": "application/json",
        },
    )
    assert r.status_code == 413, r.text
    assert "inflated" in r.text
