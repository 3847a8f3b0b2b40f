"""PC/SC card readers (ACR122U and other CCID contactless readers) through pyscard and pcscd.

The loop blocks in ``SCardGetStatusChange`` (with a short timeout only so that `stop` is
noticed), watching every matching reader plus the ``\\\\?PnP?\\Notification`` pseudo-reader,
which pcscd signals when a reader is plugged in or removed. So an idle kiosk makes one IPC call
per `wait_timeout_s` and no polling of the cards themselves.

A tap is a card *arrival*: the UID is read once with the PC/SC pseudo-APDU ``FF CA 00 00 00``
and the reader then waits for the card to leave. A card held on the reader for minutes is one
tap. pcscd counts insertions and removals per reader in the high 16 bits of the event state, so
a card swapped for another between two of our calls (while `on_tap` was busy) is still seen as
a new arrival.

Trouble is a status, never an exception out of `run`: no reader -> ABSENT (and we wait for a
PnP event), pcscd stopped or restarting -> ERROR and reconnect with exponential backoff, a card
answering an error status word -> logged, shown in the status detail, no tap.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from smartcard import scard

from hardware.backoff import Backoff
from hardware.cards import CardTap, ReaderState, ReaderStatus, TapCallback

log = logging.getLogger(__name__)

PNP_READER = "\\\\?PnP?\\Notification"
GET_UID_APDU = [0xFF, 0xCA, 0x00, 0x00, 0x00]
SW_OK = (0x90, 0x00)

# Errors after which the context is useless: pcscd stopped, restarted or its socket broke.
_SERVICE_LOST = frozenset(
    {
        scard.SCARD_E_NO_SERVICE,
        scard.SCARD_E_SERVICE_STOPPED,
        scard.SCARD_E_INVALID_HANDLE,
        scard.SCARD_F_COMM_ERROR,
        scard.SCARD_F_INTERNAL_ERROR,
    }
)
# Errors meaning the reader list changed under us: list again.
_READERS_CHANGED = frozenset({scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE})
# Errors meaning the card left (or was swapped) before we could read it.
_CARD_GONE = frozenset(
    {scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_RESET_CARD}
)

_ERROR_NAMES: dict[int, str] = {
    value: name
    for name, value in vars(scard).items()
    if name.startswith(("SCARD_E_", "SCARD_W_", "SCARD_F_")) and isinstance(value, int)
}


def error_name(hresult: int) -> str:
    """``SCARD_E_NO_SERVICE``-style name of a PC/SC result code, for logs and status."""
    return _ERROR_NAMES.get(hresult, f"0x{hresult & 0xFFFFFFFF:08X}")


class PcscServiceError(RuntimeError):
    """pcscd is not reachable (not running, restarting, or the connection broke)."""

    def __init__(self, call: str, hresult: int) -> None:
        super().__init__(f"{call}: {error_name(hresult)} ({scard.SCardGetErrorMessage(hresult)})")
        self.hresult = hresult


class CardReadError(RuntimeError):
    """A card was present but no UID could be read from it; no tap."""


class TransientCardError(CardReadError):
    """The exchange with the card broke (card moved in the field, reader hiccup); worth a retry.

    An error status word is not transient: the card answered, and will answer the same again.
    """


# Delays before re-reading a card whose exchange broke; a card slid across the antenna often
# fails the first exchange and answers the next one.
RETRY_DELAYS_S = (0.1, 0.3, 0.6)


def _matches(reader: str, name_filter: str) -> bool:
    return name_filter.casefold() in reader.casefold()


def list_readers(context: int, name_filter: str = "") -> list[str]:
    """Readers known to pcscd whose name contains `name_filter` (case-insensitive)."""
    hresult, readers = scard.SCardListReaders(context, [])
    if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
        return []
    if hresult != scard.SCARD_S_SUCCESS:
        raise PcscServiceError("SCardListReaders", hresult)
    return [r for r in readers if _matches(r, name_filter)]


def read_uid(context: int, reader: str) -> str:
    """The UID (uppercase hex, reader order) of the card on `reader`, via ``FF CA 00 00 00``."""
    hresult, card, protocol = scard.SCardConnect(
        context, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
    )
    if hresult in _SERVICE_LOST:
        raise PcscServiceError("SCardConnect", hresult)
    if hresult in _CARD_GONE:
        raise TransientCardError("card removed before its UID could be read")
    if hresult != scard.SCARD_S_SUCCESS:
        raise TransientCardError(f"cannot connect to the card: {error_name(hresult)}")
    try:
        hresult, response = scard.SCardTransmit(card, protocol, GET_UID_APDU)
    finally:
        # LEAVE_CARD: no reset, so other applications (kiosk doctor) see the same card.
        scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
    if hresult in _SERVICE_LOST:
        raise PcscServiceError("SCardTransmit", hresult)
    if hresult in _CARD_GONE:
        raise TransientCardError("card removed while its UID was being read")
    if hresult != scard.SCARD_S_SUCCESS:
        raise TransientCardError(f"GET UID failed: {error_name(hresult)}")
    if len(response) < 2:
        raise CardReadError(f"GET UID answer too short: {bytes(response).hex().upper()}")
    sw = (response[-2], response[-1])
    if sw != SW_OK:
        raise CardReadError(f"card answered SW {sw[0]:02X}{sw[1]:02X} to GET UID")
    if len(response) == 2:
        raise CardReadError("card answered GET UID with an empty UID")
    return bytes(response[:-2]).hex().upper()


@dataclass
class _Watch:
    """What one reader looked like at our last SCardGetStatusChange."""

    state: int = scard.SCARD_STATE_UNAWARE
    # pcscd's insertion/removal counter when we handled the card now present, else None.
    handled_counter: int | None = None


@dataclass(frozen=True)
class PcscProbe:
    """A one-shot look at the PC/SC stack, for `kiosk doctor`."""

    service: str  # "ok" or the error that stopped us
    readers: list[str] = field(default_factory=list)
    cards: dict[str, str] = field(default_factory=dict)  # reader -> UID hex, or "error: ..."


class PcscReader:
    """Watches all PC/SC readers whose name contains `reader_filter` (all if empty)."""

    delivered_as = "hex"

    def __init__(
        self,
        name: str = "pcsc",
        reader_filter: str = "",
        wait_timeout_s: float = 0.5,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        self.name = name
        self.reader_filter = reader_filter
        self.wait_timeout_s = wait_timeout_s
        self._backoff = Backoff(retry_initial_s, retry_max_s)
        self._status = ReaderStatus(ReaderState.STOPPED, "not started")
        self._watched: dict[str, _Watch] = {}
        self._pnp_state = scard.SCARD_STATE_UNAWARE
        self._use_pnp = True
        self.last_card_error = ""

    # -- the CardReader protocol -----------------------------------------------------------

    def status(self) -> ReaderStatus:
        return self._status

    def readers(self) -> list[str]:
        """The PC/SC readers currently watched."""
        return sorted(self._watched)

    def run(self, on_tap: TapCallback, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._session(on_tap, stop)
            except PcscServiceError as exc:
                delay = self._backoff.next_delay()
                self._set(ReaderState.ERROR, f"pcscd not reachable ({exc}); retry in {delay:.1f}s")
                log.warning("%s: %s", self.name, self._status.detail)
                stop.wait(delay)
        self._watched.clear()
        self._set(ReaderState.STOPPED, "stopped")

    # -- internals -------------------------------------------------------------------------

    def _set(self, state: ReaderState, detail: str) -> None:
        if self._status.state != state or self._status.detail != detail:
            self._status = ReaderStatus(state, detail)

    def _session(self, on_tap: TapCallback, stop: threading.Event) -> None:
        """One pcscd connection: returns on `stop`, raises PcscServiceError when pcscd goes."""
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            raise PcscServiceError("SCardEstablishContext", hresult)
        try:
            self._relist(context)
            self._backoff.reset()
            self._pnp_state = scard.SCARD_STATE_UNAWARE
            self._use_pnp = True
            timeout_ms = max(1, int(self.wait_timeout_s * 1000))
            while not stop.is_set():
                query = [(PNP_READER, self._pnp_state)] if self._use_pnp else []
                query += [(r, w.state) for r, w in self._watched.items()]
                if not query:  # no PnP support and no reader: look again after a while
                    stop.wait(self.wait_timeout_s)
                    self._relist(context)
                    continue
                hresult, events = scard.SCardGetStatusChange(context, timeout_ms, query)
                if hresult == scard.SCARD_E_TIMEOUT and not self._use_pnp:
                    self._relist(context)  # without PnP, reader arrival is only seen by listing
                elif hresult in _READERS_CHANGED:
                    self._relist(context)
                elif hresult == scard.SCARD_S_SUCCESS:
                    if self._dispatch(context, events, on_tap):
                        self._relist(context)
                elif hresult not in (scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
                    raise PcscServiceError("SCardGetStatusChange", hresult)
        finally:
            self._watched.clear()
            scard.SCardReleaseContext(context)

    def _dispatch(
        self, context: int, events: list[tuple[str, int, list[int]]], on_tap: TapCallback
    ) -> bool:
        """Act on SCardGetStatusChange results; True if the reader list must be read again."""
        relist = False
        for reader, event, _atr in events:
            if reader == PNP_READER:
                if event & scard.SCARD_STATE_UNKNOWN:
                    # A PC/SC stack without PnP notification would answer at once, every
                    # time: drop it rather than spin.
                    log.info("%s: no PnP notification; listing readers instead", self.name)
                    self._use_pnp = False
                relist |= bool(event & scard.SCARD_STATE_CHANGED)
                self._pnp_state = event & ~scard.SCARD_STATE_CHANGED
            elif reader in self._watched:
                relist |= self._on_event(context, reader, event, on_tap)
        return relist

    def _relist(self, context: int) -> None:
        """Re-read the reader list after a PnP event; keep what we know of kept readers."""
        readers = list_readers(context, self.reader_filter)
        added = [r for r in readers if r not in self._watched]
        removed = [r for r in self._watched if r not in readers]
        for reader in removed:
            log.warning("%s: PC/SC reader removed: %s", self.name, reader)
            del self._watched[reader]
        for reader in added:
            log.info("%s: PC/SC reader found: %s", self.name, reader)
            self._watched[reader] = _Watch()
        if self._watched:
            detail = f"watching {len(readers)} reader(s): {', '.join(sorted(self._watched))}"
            if self.last_card_error:
                detail += f"; last card error: {self.last_card_error}"
            self._set(ReaderState.OK, detail)
            return
        wanted = f" matching {self.reader_filter!r}" if self.reader_filter else ""
        others = list_readers(context) if self.reader_filter else []
        seen = f" (present: {', '.join(others)})" if others else ""
        self._set(ReaderState.ABSENT, f"no PC/SC reader{wanted} connected{seen}")

    def _on_event(self, context: int, reader: str, event: int, on_tap: TapCallback) -> bool:
        """Handle one reader's new state; True if the reader list must be read again."""
        watch = self._watched[reader]
        watch.state = event & ~scard.SCARD_STATE_CHANGED
        if event & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE):
            return True
        counter = (event >> 16) & 0xFFFF
        if not event & scard.SCARD_STATE_PRESENT:
            watch.handled_counter = None  # card gone: the next one is a new tap
            return False
        if watch.handled_counter == counter:
            return False  # same card still on the reader (or an INUSE/EXCLUSIVE flip)
        watch.handled_counter = counter
        if event & scard.SCARD_STATE_MUTE:
            self._card_error(reader, "card does not answer (mute)")
            return False
        try:
            uid = self._read_with_retries(context, reader)
        except CardReadError as exc:
            self._card_error(reader, str(exc))
            return False
        log.info("%s: card %s on %s", self.name, uid, reader)
        try:
            on_tap(CardTap(uid=uid, reader=reader, delivered_as=self.delivered_as))
        except Exception:  # a failing consumer must not kill the reader thread
            log.exception("tap handler failed for card %s on %s", uid, reader)
        return False

    def _read_with_retries(self, context: int, reader: str) -> str:
        for delay in (*RETRY_DELAYS_S, None):
            try:
                return read_uid(context, reader)
            except TransientCardError as exc:
                if delay is None:
                    raise
                log.info("%s: %s on %s; reading again in %.1fs", self.name, exc, reader, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _card_error(self, reader: str, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.last_card_error = f"{reader} at {stamp}: {message}"
        log.warning("%s: no tap: %s on %s", self.name, message, reader)
        self._set(
            ReaderState.OK,
            f"watching {len(self._watched)} reader(s): {', '.join(sorted(self._watched))}; "
            f"last card error: {self.last_card_error}",
        )


def probe(reader_filter: str = "") -> PcscProbe:
    """List readers and the UID of any card on them now; never raises (for `kiosk doctor`)."""
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        return PcscProbe(service=f"pcscd not reachable: {error_name(hresult)}")
    try:
        readers = list_readers(context, reader_filter)
        cards: dict[str, str] = {}
        if readers:
            hresult, states = scard.SCardGetStatusChange(
                context, 0, [(r, scard.SCARD_STATE_UNAWARE) for r in readers]
            )
            for reader, event, _atr in states if hresult == scard.SCARD_S_SUCCESS else []:
                if event & scard.SCARD_STATE_PRESENT:
                    try:
                        cards[reader] = read_uid(context, reader)
                    except CardReadError as exc:
                        cards[reader] = f"error: {exc}"
        return PcscProbe(service="ok", readers=readers, cards=cards)
    except PcscServiceError as exc:
        return PcscProbe(service=f"pcscd not reachable: {exc}")
    finally:
        scard.SCardReleaseContext(context)
