"""Card tap -> durable record -> event, through the reader thread and the real handler.

Ours: `build_services` + `card_tap_handler` (one pooled WAL writer, synchronous=FULL).
Baseline: the same rules (`CheckinService` on the same schema) over a store that opens a fresh
SQLite connection per transaction, rollback journal, synchronous=FULL.

A tap is timed from `SimulatedReader.tap()` (or from the PC/SC reader's delivery of the UID)
to the `checkin` event on the bus, which is published after the commit. Ours and the baseline
alternate tap by tap. The burst presents 20 cards a second to each for its duration and
counts records: none may be lost.
"""

from __future__ import annotations

import functools
import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.common import Clock, NaiveStore, card_uid, kiosk_config, open_naive_store, seed
from bench.harness import Budget, Context, Row, p50, p99, profile_call
from hardware.simulated import SimulatedReader

BUDGET = Budget("<=", 20.0, "ms")
BASELINE_LABEL = (
    "same CheckinService rules, fresh SQLite connection per transaction (NullPool), "
    "rollback journal, synchronous=FULL"
)


@dataclass
class Lane:
    """One kiosk (ours or the baseline): services, reader thread, and timed events."""

    name: str
    services: Any
    reader: Any
    clock: Clock
    stop: threading.Event = field(default_factory=threading.Event)
    events: queue.Queue[tuple[float, dict[str, Any]]] = field(default_factory=queue.Queue)
    delivered: queue.Queue[float] = field(default_factory=queue.Queue)
    elders: int = 400
    count: int = 0

    def next_uid(self) -> str:
        """A card whose holder has not eaten yet today (a new day once all have)."""
        i, self.count = self.count, self.count + 1
        self.clock.day = i // self.elders
        return card_uid(i % self.elders + 1)

    def start(self) -> None:
        from kiosk.runtime.daemon import card_tap_handler

        bus = self.services.bus
        publish = bus.publish

        def timed_publish(kind: str, data: dict[str, Any]) -> Any:
            event = publish(kind, data)
            if kind == "checkin":
                self.events.put((time.perf_counter(), data))
            return event

        bus.publish = timed_publish  # instance attribute: CheckinService calls this one
        handler = card_tap_handler(self.services)

        def on_tap(cfg: Any, tap: Any) -> None:
            self.delivered.put(time.perf_counter())
            handler(cfg, tap)

        self.services.readers.start(on_tap, self.stop)

    def close(self) -> None:
        self.stop.set()
        self.services.readers.join()
        self.services.store.close()

    def records(self) -> int:
        from models.tables import MealRecord

        with self.services.store.read() as s:
            return int(s.scalar(select(func.count()).select_from(MealRecord)) or 0)

    def wait_event(self, timeout: float = 10.0) -> tuple[float, dict[str, Any]]:
        return self.events.get(timeout=timeout)


def _lane(name: str, folder: Path, naive: bool, elders: int, readers: Any = None) -> Lane:
    from kiosk.config import ReaderConfig
    from kiosk.ops.storage import open_store
    from kiosk.runtime.daemon import build_services

    store = open_naive_store(folder / "kiosk.db") if naive else open_store(folder)
    seed(store, elders)
    clock = Clock()
    if readers is None:
        reader = SimulatedReader("desk")
        readers = [(ReaderConfig(kind="simulated", name="desk"), reader)]
    services = build_services(kiosk_config(), folder, readers=readers, store=store, clock=clock)
    assert isinstance(store, NaiveStore) == naive
    return Lane(name, services, readers[0][1], clock, elders=elders)


def _sequential(lanes: list[Lane], taps: int) -> dict[str, list[float]]:
    """Alternate the lanes tap by tap; each tap waits for its event (latency, not load)."""
    out: dict[str, list[float]] = {lane.name: [] for lane in lanes}
    for i in range(taps):
        order = lanes if i % 2 == 0 else lanes[::-1]
        for lane in order:
            uid = lane.next_uid()
            t0 = time.perf_counter()
            lane.reader.tap(uid)
            t1, data = lane.wait_event()
            if data["outcome"] != "accepted":
                raise RuntimeError(f"{lane.name}: tap {i} was {data['outcome']}: {data['message']}")
            out[lane.name].append((t1 - t0) * 1000)
    return out


def _burst(lanes: list[Lane], seconds: float, rate: float) -> dict[str, dict[str, float]]:
    """`rate` taps/s to every lane for `seconds` (lanes staggered by half a period)."""
    before = {lane.name: lane.records() for lane in lanes}
    period = 1.0 / rate
    n = round(seconds * rate)
    sent: dict[str, list[float]] = {lane.name: [] for lane in lanes}
    start = time.perf_counter()
    for i in range(n):
        for k, lane in enumerate(lanes):
            due = start + i * period + k * period / len(lanes)
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            uid = lane.next_uid()
            sent[lane.name].append(time.perf_counter())
            lane.reader.tap(uid)
    result: dict[str, dict[str, float]] = {}
    for lane in lanes:
        latencies = []
        outcomes: dict[str, int] = {}
        for t0 in sent[lane.name]:
            try:
                t1, data = lane.wait_event(timeout=30)
            except queue.Empty:
                break
            outcomes[data["outcome"]] = outcomes.get(data["outcome"], 0) + 1
            latencies.append((t1 - t0) * 1000)  # events arrive in tap order (one reader thread)
        records = lane.records() - before[lane.name]
        result[lane.name] = {
            "sent": n,
            "events": len(latencies),
            "records": records,
            "lost": n - records,
            "p50": p50(latencies),
            "p99": p99(latencies),
            "accepted": outcomes.get("accepted", 0),
        }
    return result


def run(ctx: Context) -> list[Row]:
    elders = 400
    taps = ctx.size(30, 1000)
    burst_s = ctx.size(1.5, 60.0)
    ours = _lane("ours", ctx.workdir / "ours", naive=False, elders=elders)
    base = _lane("baseline", ctx.workdir / "naive", naive=True, elders=elders)
    lanes = [ours, base]
    rows: list[Row] = []
    try:
        for lane in lanes:
            lane.start()
        _sequential(lanes, 10)  # warm-up: imports, page cache, first WAL frames
        lat = _sequential(lanes, taps)
        o, b = lat["ours"], lat["baseline"]
        common: dict[str, Any] = {
            "bench": "card", "unit": "ms", "baseline_label": BASELINE_LABEL, "n": taps,
        }  # fmt: skip
        rows.append(
            Row(metric="simulated tap->record+event p50", ours=p50(o), baseline=p50(b), **common)
        )
        rows.append(
            Row(metric="simulated tap->record+event p99", ours=p99(o), baseline=p99(b),
                budget=BUDGET, **common)
        )  # fmt: skip
        burst = _burst(lanes, burst_s, 20.0)
        bo, bb = burst["ours"], burst["baseline"]
        n = int(bo["sent"])
        rows.append(
            Row(bench="card", metric=f"burst 20 taps/s x {burst_s:.0f} s: p99", ours=bo["p99"],
                baseline=bb["p99"], unit="ms", budget=BUDGET, baseline_label=BASELINE_LABEL, n=n)
        )  # fmt: skip
        rows.append(
            Row(bench="card", metric=f"burst: taps lost of {n}", ours=bo["lost"],
                baseline=bb["lost"], unit="", budget=Budget("<=", 0, ""),
                baseline_label=BASELINE_LABEL, n=n)
        )  # fmt: skip
        ctx.extra["burst"] = burst
        if p99(o) > BUDGET.value or bo["p99"] > BUDGET.value:
            _profile(ctx, ours)
        ctx.note(
            f"Sequential: {taps} taps per side, alternating ours/baseline, each waited for. "
            f"Burst: 20 taps/s to each side at once for {burst_s:.0f} s "
            f"(ours {int(bo['records'])} records, baseline {int(bb['records'])} of {n})."
        )
    finally:
        for lane in lanes:
            lane.close()
    rows += _pcsc(ctx, elders)
    return rows


def _profile(ctx: Context, lane: Lane) -> None:
    """The handler itself, called in this thread (cProfile sees only its own thread)."""
    from hardware.cards import CardTap
    from kiosk.runtime.daemon import card_tap_handler

    handler = card_tap_handler(lane.services)
    cfg = lane.services.readers.slots[0].config

    def taps() -> None:
        for _ in range(100):
            handler(cfg, CardTap(uid=lane.next_uid(), reader="desk", delivered_as="hex"))

    ctx.profiles["card taps (ours): 100 x card_tap_handler, by own time"] = profile_call(
        taps, sort="tottime"
    )


# ----------------------------------------------------------------------------- PC/SC


@functools.cache
def _vpcd() -> Any:
    """hardware/vpcd_card.py: the virtual card and the pcscd side of the virtual stack."""
    from hardware import vpcd_card

    return vpcd_card


def _pcsc_available() -> str | None:
    if shutil.which("pcscd") is None:
        return "pcscd is not installed"
    if not _vpcd().VPCD_DRIVER.exists():
        return "vsmartcard-vpcd is not installed"
    return None


def _start_pcscd(workdir: Path) -> subprocess.Popen[bytes] | None:
    """Our own pcscd with only the vpcd reader; None when a running one already has it."""
    from bench.common import wait_until

    vpcd = _vpcd()
    if vpcd.pcscd_socket_alive():
        if vpcd.READER_0 not in vpcd.reader_names():
            raise RuntimeError("a running pcscd has no 'Virtual PCD' reader")
        return None
    conf = workdir / "reader.conf.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "vpcd").write_text(vpcd.VPCD_READER_CONF)
    log_file = (workdir / "pcscd.log").open("ab")
    proc = subprocess.Popen(
        ["pcscd", "--foreground", "--config", str(conf)], stdout=log_file, stderr=subprocess.STDOUT
    )
    wait_until(lambda: vpcd.pcscd_socket_alive() or proc.poll() is not None, "pcscd", 10)
    if proc.poll() is not None:
        raise RuntimeError(f"pcscd exited with {proc.returncode}")
    wait_until(lambda: vpcd.READER_0 in vpcd.reader_names(), "the vpcd reader", 10)
    return proc


def _pcsc(ctx: Context, elders: int) -> list[Row]:  # noqa: PLR0912, PLR0915
    why = _pcsc_available()
    if why:
        ctx.note(f"PC/SC rows skipped: {why} (apt-get install pcscd vsmartcard-vpcd).")
        return []
    from hardware.pcsc_reader import PcscReader
    from kiosk.config import ReaderConfig

    try:
        pcscd = _start_pcscd(ctx.workdir)
    except Exception as exc:
        ctx.note(f"PC/SC rows skipped: cannot start pcscd with the vpcd reader: {exc}")
        return []
    virtual_card = _vpcd().VirtualCard
    lanes: list[Lane] = []
    try:
        for slot, (name, naive) in enumerate((("ours", False), ("baseline", True))):
            reader = PcscReader(
                name=f"nfc{slot}", reader_filter=_vpcd().READERS[slot], wait_timeout_s=0.2,
                retry_max_s=1.0,
            )  # fmt: skip
            cfg = ReaderConfig(kind="pcsc", name=f"nfc{slot}")
            lane = _lane(
                name, ctx.workdir / f"pcsc-{name}", naive=naive, elders=elders,
                readers=[(cfg, reader)],
            )  # fmt: skip
            lanes.append(lane)
            lane.start()
        taps = ctx.size(6, 40)
        results: dict[str, dict[str, list[float]]] = {
            lane.name: {"delivered": [], "presented": []} for lane in lanes
        }
        misreads = {lane.name: 0 for lane in lanes}
        for i in range(taps + 2):
            order = lanes if i % 2 == 0 else lanes[::-1]
            for lane in order:
                slot = lanes.index(lane)
                uid = lane.next_uid()
                t0 = time.perf_counter()
                card = virtual_card(uid, slot=slot).insert()
                try:
                    t_event, data = lane.wait_event(timeout=5)
                    t_tap = lane.delivered.get(timeout=1)
                except queue.Empty:
                    data = {"outcome": "lost"}
                finally:
                    card.remove()
                while not lane.delivered.empty():  # a tap without an event: keep pairs aligned
                    lane.delivered.get_nowait()
                if data["outcome"] != "accepted":
                    misreads[lane.name] += 1  # vpcd swapped cards too fast (see vpcd_card.py)
                elif i >= 2:  # the first taps warm up
                    results[lane.name]["delivered"].append((t_event - t_tap) * 1000)
                    results[lane.name]["presented"].append((t_event - t0) * 1000)
                _wait_empty(_vpcd().READERS[slot])
        o, b = results["ours"], results["baseline"]
        common: dict[str, Any] = {
            "bench": "card",
            "unit": "ms",
            "baseline_label": BASELINE_LABEL,
            "n": taps,
        }
        ctx.note(
            "PC/SC: a VirtualCard on pcscd's vpcd reader (slot 0 ours, slot 1 baseline); "
            "'UID read -> event' starts when PcscReader delivers the UID; 'card presented -> "
            "event' includes vpcd's presence polling and the APDU round trip through pcscd. "
            f"Taps not accepted (vpcd artefacts, left out of the figures): {misreads}."
        )
        return [
            Row(metric="PC/SC UID read->record+event p50", ours=p50(o["delivered"]),
                baseline=p50(b["delivered"]), **common),
            Row(metric="PC/SC UID read->record+event p99", ours=p99(o["delivered"]),
                baseline=p99(b["delivered"]), budget=BUDGET, **common),
            Row(metric="PC/SC card presented->event p50", ours=p50(o["presented"]),
                baseline=p50(b["presented"]), **common),
        ]  # fmt: skip
    finally:
        for lane in lanes:
            lane.close()
        if pcscd is not None:
            pcscd.terminate()
            try:
                pcscd.wait(10)
            except subprocess.TimeoutExpired:
                pcscd.kill()


def _wait_empty(reader: str, timeout: float = 3.0) -> None:
    """pcscd notices a removed virtual card at its next presence check (~400 ms)."""
    from smartcard import scard

    deadline = time.monotonic() + timeout
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    try:
        while time.monotonic() < deadline:
            hresult, states = scard.SCardGetStatusChange(
                context, 0, [(reader, scard.SCARD_STATE_UNAWARE)]
            )
            if hresult == scard.SCARD_S_SUCCESS and not (states[0][1] & scard.SCARD_STATE_PRESENT):
                return
            time.sleep(0.02)
    finally:
        scard.SCardReleaseContext(context)
