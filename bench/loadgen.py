"""A lean load generator for the ingest benchmark, and CPU accounting from /proc.

Real kiosks are elsewhere: the generator should take as little of the 2 shared cores as it
can, so the figure is the platform's. Every request is built beforehand (headers and the
gzip body, exactly what PlatformClient sends); one asyncio loop in one thread keeps one
HTTP/1.1 keep-alive connection per kiosk and only writes those bytes and reads the status line,
the headers and the body of each answer. (The previous generator, one httpx client per kiosk
on 200 threads, took ~15-20 µs of CPU per record itself.)

CPU is read from /proc for a process tree (utime + stime of the live processes, plus what
their reaped children left in cutime/cstime), so the platform's workers, PostgreSQL's backends
and the generator itself are each counted per phase.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- CPU from /proc


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                kids.setdefault(int(fields[1]), []).append(int(entry.name))
    return kids


def tree_cpu(pid: int, kids: dict[int, list[int]] | None = None) -> float:
    """CPU seconds of a process and its descendants (live, and reaped ones via cutime)."""
    kids = _children() if kids is None else kids
    fields = _stat(pid)
    if fields is None:
        return 0.0
    # fields[11..14]: utime, stime, cutime, cstime (man 5 proc, counted from field 3)
    own = sum(int(x) for x in fields[11:15]) / CLOCK_TICK
    return own + sum(tree_cpu(child, kids) for child in kids.get(pid, []))


def child_pids(pid: int, command_has: bytes = b"") -> list[int]:
    """Direct children of pid whose command line contains `command_has`, oldest first."""
    started = []
    for child in _children().get(pid, []):
        fields = _stat(child)
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if fields is not None and command_has in command:
            started.append((int(fields[19]), child))  # starttime
    return [child for _, child in sorted(started)]


@dataclass
class CpuMeter:
    """CPU seconds of named process trees between start() and stop(); this process's own pid
    counts this process alone (its threads, not its children)."""

    pids: dict[str, int]
    before: dict[str, float] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)

    def _read(self) -> dict[str, float]:
        kids = _children()
        me = os.getpid()  # this process alone: the platform it started is its child
        return {
            name: time.process_time() if pid == me else tree_cpu(pid, kids)
            for name, pid in self.pids.items()
        }

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> None:
        after = self._read()
        self.spent = {name: after[name] - self.before[name] for name in self.pids}


# ----------------------------------------------------------------------------- HTTP


@dataclass
class Sent:
    """What one kiosk's connection saw: latency of every answer (ms) and its status."""

    latencies: list[float] = field(default_factory=list)
    busy: int = 0
    errors: list[str] = field(default_factory=list)


def request_bytes(host: str, port: int, token: str, body: bytes) -> bytes:
    """POST /v1/records with a gzip body, as PlatformClient sends it."""
    head = (
        f"POST /v1/records HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def _kiosk(
    host: str, port: int, requests: list[bytes], due: list[float] | None,
    gate: asyncio.Event, out: Sent,
) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port)
    await gate.wait()
    try:
        for i, request in enumerate(requests):
            if due is not None:
                await asyncio.sleep(max(0.0, due[i] - time.perf_counter()))
            while True:
                t0 = time.perf_counter()
                writer.write(request)
                status, headers, body = await _answer(reader)
                out.latencies.append((time.perf_counter() - t0) * 1000)
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                if status == 503:  # busy: back off as the uploader does (at most 5 s)
                    out.busy += 1
                    await asyncio.sleep(min(5.0, float(headers.get("retry-after", "1"))))
                    continue
                if status != 200:
                    out.errors.append(f"HTTP {status}: {body[:300]!r}")
                break
    finally:
        writer.close()


def fire(
    host: str, port: int, jobs: list[list[bytes]], period: float | None, meter: CpuMeter
) -> tuple[float, list[Sent]]:
    """Every kiosk sends its requests in order: all at once (`period` None) or one every
    `period` seconds, kiosks staggered over the period. Connections are opened first; the
    clock and the CPU meter start when every kiosk is connected. (wall seconds, per kiosk)"""

    async def run() -> tuple[float, list[Sent]]:
        gate = asyncio.Event()
        outs = [Sent() for _ in jobs]
        tasks = []
        t0 = time.perf_counter() + 0.5  # connections are open by then
        for index, requests in enumerate(jobs):
            due = (
                None
                if period is None
                else [t0 + period * (i + index / len(jobs)) for i in range(len(requests))]
            )
            tasks.append(asyncio.create_task(_kiosk(host, port, requests, due, gate, outs[index])))
        await asyncio.sleep(max(0.0, t0 - time.perf_counter()))
        meter.start()
        started = time.perf_counter()
        gate.set()
        await asyncio.gather(*tasks)
        seconds = time.perf_counter() - started
        meter.stop()
        return seconds, outs

    return asyncio.run(run())
