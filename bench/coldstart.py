"""`kiosk run` as systemd starts it: time from exec to READY=1 on $NOTIFY_SOCKET, and resident
memory (VmRSS) after 1,000 card check-ins through POST /api/simulate/tap (the simulated
reader's own thread, the real path). Card-only config (the default: camera off); the RSS of a
process with the face worker and dlib's models loaded is in the idle benchmark.
"""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import card_uid, child_env, free_port, seed, stop_process, vm_rss_mb
from bench.harness import REPO, Budget, Context, Row, p50


def noon_zone() -> str:
    """A fixed-offset zone in which it is about noon now, so the lunch slot is open."""
    offset = 12 - dt.datetime.now(dt.UTC).hour
    offset = offset - 24 if offset > 14 else offset
    return "Etc/GMT" + (f"-{offset}" if offset > 0 else f"+{-offset}")


def write_config(folder: Path, port: int) -> Path:
    path = folder / "config.yaml"
    path.write_text(
        f"""\
site: {{point_id: ZY-BENCH, name: 基准测试小院, timezone: {noon_zone()}}}
device: {{device_id: bench-cold}}
meal:
  slots: [{{name: lunch, start: "00:00", end: "23:59"}}]
web: {{port: {port}}}
readers: [{{kind: simulated, name: desk}}]
""",
        encoding="utf-8",
    )
    return path


def _start(config: Path, data: Path, sock_path: Path) -> tuple[subprocess.Popen[bytes], float]:
    """Start the daemon; (process, seconds to READY=1)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock_path.unlink(missing_ok=True)
    sock.bind(str(sock_path))
    sock.settimeout(60)
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "kiosk", "--config", str(config), "--data-dir", str(data),
             "run"],
            cwd=REPO, env=child_env(NOTIFY_SOCKET=str(sock_path)),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        while True:
            try:
                msg = sock.recv(4096).decode()
            except TimeoutError:
                stop_process(proc)
                raise RuntimeError("no READY=1 within 60 s") from None
            if msg.startswith("READY=1") or "\nREADY=1" in msg:
                return proc, time.perf_counter() - t0
    finally:
        sock.close()


def run(ctx: Context) -> list[Row]:
    import httpx

    from kiosk.ops.storage import open_store

    elders = 1000
    checkins = ctx.size(50, 1000)
    reps = ctx.size(1, 5)
    data = ctx.workdir / "data"
    store = open_store(data)
    seed(store, elders)
    store.close()
    port = free_port()
    config = write_config(ctx.workdir, port)
    times = []
    rss_ready: list[float] = []
    proc = None
    try:
        for rep in range(reps):
            proc, seconds = _start(config, data, ctx.workdir / "notify.sock")
            times.append(seconds)
            rss_ready.append(vm_rss_mb(proc.pid))
            if rep < reps - 1:
                stop_process(proc)
                proc = None
        assert proc is not None
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as http:
            t0 = time.perf_counter()
            for i in range(checkins):
                http.post("/api/simulate/tap", json={"uid": card_uid(i % elders + 1)})
                if i % 50 == 49:  # a caregiver's page also reads the headcount
                    http.get("/api/headcount")
            deadline = time.monotonic() + 120
            served = 0
            while time.monotonic() < deadline:
                served = int(http.get("/api/headcount").json().get("served", 0))
                if served >= min(checkins, elders):
                    break
                time.sleep(0.1)
            seconds_checkins = time.perf_counter() - t0
        rss_after = vm_rss_mb(proc.pid)
    finally:
        stop_process(proc)
    if served < min(checkins, elders):
        raise RuntimeError(f"only {served} of {checkins} check-ins were served")
    ctx.extra.update(start_s=times, rss_ready_mb=rss_ready, rss_after_mb=rss_after)
    ctx.note(
        f"{reps} starts (database already migrated, {elders} elders); READY=1 sent once the "
        f"web server serves. RSS at READY {p50(rss_ready):.0f} MB; {checkins} check-ins over "
        f"HTTP took {seconds_checkins:.1f} s; headcount served {served}. No naive baseline: "
        "the figures are absolute."
    )
    common: dict[str, Any] = {"bench": "coldstart"}
    return [
        Row(metric="exec -> READY=1 p50", ours=p50(times), unit="s", n=reps, **common),
        Row(metric="exec -> READY=1 max", ours=max(times), unit="s", n=reps, **common),
        Row(
            metric=f"VmRSS after {checkins} check-ins",
            ours=rss_after,
            unit="MB",
            budget=Budget("<=", 300.0, "MB"),
            **common,
        ),
    ]
