"""Speed of the INSTALLED service (`make systemd-host-measure`), beside bench's dev-mode figures.

On a fresh systemd host: install.sh (the OpenBLAS dlib when its wheel is cached, else
--no-blas), a county config with the camera on a looping static video, then:

* start -> READY=1: systemd's own timestamps (InactiveExit -> ActiveEnter, so ExecStartPre's
  validate-config is included, as on a real boot) for the first start after the page cache
  was dropped (cold) and for 5 restarts (warm);
* resident memory (VmRSS of the main process) and idle CPU (the unit cgroup's usage_usec over
  60 s, so decode threads and helpers count) with the camera on and nobody in view.

Figures go to bench/results/installed.json (committed beside the dev-mode results, so the
README's figures can be checked in a clone) and stdout. Timings are never
asserted (DESIGN.md: speed belongs to the benchmarks).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.support.config import noon_zone
from tests.support.paths import REPO
from tests.systemd.host_setup import county_config, host_workdir, install
from tests.systemd.systemd_host import SystemdHost, missing_kernel_feature, wait_for

log = logging.getLogger("measure_installed")
RESULTS = REPO / "bench" / "results"
WHEEL_CACHE = Path.home() / ".cache" / "haolinju-kiosk" / "wheels"
VIDEO_DIR = "/srv/haolinju-camera"
IDLE_S = 60


def ready_seconds(host: SystemdHost) -> tuple[float, float]:
    """(unit start -> READY, main process exec -> READY) of the last start, in seconds."""
    props = host.show(
        "kiosk.service",
        "InactiveExitTimestampMonotonic",
        "ExecMainStartTimestampMonotonic",
        "ActiveEnterTimestampMonotonic",
    )
    ready = int(props["ActiveEnterTimestampMonotonic"])
    unit = (ready - int(props["InactiveExitTimestampMonotonic"])) / 1e6
    main = (ready - int(props["ExecMainStartTimestampMonotonic"])) / 1e6
    return unit, main


def start_and_wait(host: SystemdHost) -> None:
    # Many starts in a row: out of StartLimitBurst's reach (it guards against crash loops).
    host.systemctl("reset-failed", "kiosk.service", check=False)
    host.systemctl("start", "kiosk.service")  # returns once READY=1 arrived (Type=notify)
    assert host.show("kiosk.service", "ActiveState")["ActiveState"] == "active"


def rss_mb(host: SystemdHost, pid: int) -> int:
    status = host.path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    return round(rss_kb / 1024)


def cgroup_usage_usec(host: SystemdHost) -> int:
    stat = host.path("/sys/fs/cgroup/system.slice/kiosk.service/cpu.stat").read_text()
    return int(dict(line.split() for line in stat.splitlines())["usage_usec"])


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reason = missing_kernel_feature()
    if reason:
        log.error("cannot measure: %s", reason)
        return 1
    blas = any(WHEEL_CACHE.glob("blas-*/dlib-*.whl"))
    workdir = host_workdir("measure-host")
    host = SystemdHost(workdir)
    figures: dict[str, object] = {"dlib": "OpenBLAS build" if blas else "dlib-bin (--no-blas)"}
    try:
        with host.boot():
            from bench.idle import make_videos

            with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
                static, _, _ = make_videos(Path(tmp))
                video_dir = host.path(VIDEO_DIR)
                video_dir.mkdir(parents=True)
                shutil.copy(static, video_dir / "static.avi")
                (video_dir / "static.avi").chmod(0o644)
            config = county_config(noon_zone())
            config = config.replace(
                "  enabled: false\n  # Device index", "  enabled: true\n  # Device index"
            )
            config = config.replace("  source: 0\n", f"  source: {VIDEO_DIR}/static.avi\n")
            config = config.replace("  loop: false\n", "  loop: true\n")
            assert f"source: {VIDEO_DIR}/static.avi" in config and "loop: true" in config
            etc = host.path("/etc/haolinju-kiosk")
            etc.mkdir(parents=True)
            (etc / "config.yaml").write_text(config)
            started = time.monotonic()
            install(host, *(() if blas else ("--no-blas",)), "--no-ui")
            figures["install_s"] = round(time.monotonic() - started, 1)

            # Card only (the camera off), as bench's dev-mode coldstart runs it.
            etc_config = etc / "config.yaml"
            camera_config = etc_config.read_text()
            etc_config.write_text(county_config(noon_zone()))
            card_only = []
            for _ in range(5):
                host.systemctl("stop", "kiosk.service")
                start_and_wait(host)
                card_only.append(ready_seconds(host))
            figures["card_only_exec_to_ready_p50_s"] = round(
                statistics.median(m for _, m in card_only), 2
            )
            pid = int(host.show("kiosk.service", "MainPID")["MainPID"])
            figures["card_only_rss_at_ready_mb"] = rss_mb(host, pid)
            etc_config.write_text(camera_config)

            host.systemctl("stop", "kiosk.service")
            os.sync()
            Path("/proc/sys/vm/drop_caches").write_text("1\n")  # page cache only, once
            start_and_wait(host)
            figures["cold_start_to_ready_s"], figures["cold_exec_to_ready_s"] = ready_seconds(host)
            warm = []
            for _ in range(5):
                host.systemctl("stop", "kiosk.service")
                start_and_wait(host)
                warm.append(ready_seconds(host))
            figures["load_average_1min"] = os.getloadavg()[0]
            figures["warm_start_to_ready_p50_s"] = round(statistics.median(u for u, _ in warm), 2)
            figures["warm_exec_to_ready_p50_s"] = round(statistics.median(m for _, m in warm), 2)

            health = host.run(["curl", "-s", "-m", "10", "http://127.0.0.1:8080/api/health"])
            camera = json.loads(health.stdout).get("camera")
            figures["camera_health"] = camera
            time.sleep(15)  # warm-up: first frames, models on first use
            pid = int(host.show("kiosk.service", "MainPID")["MainPID"])
            before, t0 = cgroup_usage_usec(host), time.monotonic()
            wait_for(lambda: time.monotonic() - t0 >= IDLE_S, IDLE_S + 5, "the idle window", 1)
            used = cgroup_usage_usec(host) - before
            figures["idle_cpu_camera_on_pct_of_core"] = round(
                100 * used / 1e6 / (time.monotonic() - t0), 1
            )
            figures["rss_camera_on_mb"] = rss_mb(host, pid)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    (RESULTS / "installed.json").write_text(json.dumps(figures, indent=2) + "\n")
    log.info("%s", json.dumps(figures, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
