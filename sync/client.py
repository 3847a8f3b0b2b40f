"""The kiosk's HTTP client for the platform: timeouts, size limits, typed failures.

A village 4G link drops, proxies return HTML error pages, a response can be cut mid-body. Every
such case becomes a `PlatformError` with a short, loggable message; the caller decides what
changes (nothing, for a bad response). Nothing here touches the database.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import gzip
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from sync.wire import (
    AckedCheckpoint,
    BatchResult,
    BookBatch,
    BooksHead,
    Checkpoint,
    CheckpointResult,
    DaySeqs,
    Heartbeat,
    HeartbeatAck,
    HeldRecords,
    ReconcileReport,
    RecordBatch,
    SignedRoster,
)

log = logging.getLogger(__name__)

# A BatchResult for 5000 records is ~250 kB; anything far bigger is not a real answer.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=10.0)
M = TypeVar("M", bound=BaseModel)


class PlatformError(Exception):
    """A failed exchange. `kind`: network | http | auth | bad_response (| upload, from jobs)."""

    def __init__(
        self,
        kind: str,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(kind, message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


class PlatformClient:
    """One device's authenticated connection to the platform."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "haolinju-kiosk"},
            timeout=timeout,
        )
        self.max_response_bytes = max_response_bytes
        self.clock = clock
        # Platform time minus ours, from the last response that carried server_time.
        self.clock_offset_s: float | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PlatformClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ endpoints

    def post_records(self, batch: RecordBatch) -> tuple[BatchResult, int]:
        """Send a batch gzip-compressed; returns the result and the bytes sent."""
        body = gzip.compress(batch.model_dump_json().encode(), compresslevel=6)
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        result = self._call("POST", "/v1/records", BatchResult, content=body, headers=headers)
        return result, len(body)

    def post_books(self, batch: BookBatch) -> BatchResult:
        """Send entries of the village's books (small: plain JSON)."""
        return self._call("POST", "/v1/books", BatchResult, json=_dump(batch))

    def books_head(self) -> BooksHead:
        return self._call("GET", "/v1/books/head", BooksHead)

    def post_checkpoint(self, cp: Checkpoint) -> CheckpointResult:
        return self._call("POST", "/v1/checkpoints", CheckpointResult, json=_dump(cp))

    def last_checkpoint(self) -> AckedCheckpoint | None:
        """The newest checkpoint of ours the platform accepted (signed), None if none yet."""
        try:
            return self._call("GET", "/v1/checkpoints/last", AckedCheckpoint)
        except PlatformError as exc:
            if exc.status == 404:
                return None
            raise

    def held_records(self, after_seq: int, limit: int = 500) -> HeldRecords:
        """The platform's copy of our records after `after_seq` (for recovery)."""
        params = {"after_seq": after_seq, "limit": limit}
        return self._call("GET", "/v1/records/mine", HeldRecords, params=params)

    def reconcile(self, date_from: dt.date, date_to: dt.date) -> ReconcileReport:
        params = {"from": date_from.isoformat(), "to": date_to.isoformat()}
        return self._call("GET", "/v1/reconcile", ReconcileReport, params=params)

    def day_seqs(self, day: dt.date) -> DaySeqs:
        return self._call("GET", f"/v1/reconcile/{day.isoformat()}/seqs", DaySeqs)

    def roster(self, since: int) -> SignedRoster | None:
        """The roster delta after `since`, or None when nothing changed (304)."""
        headers = {"If-None-Match": f'"{since}"'} if since else {}
        return self._call_unless_unchanged(
            "GET", "/v1/roster", SignedRoster, params={"since": since}, headers=headers
        )

    def county_cards(self, etag: str | None = None) -> SignedRoster | None:
        """The signed county card list (roaming elders; the payload is a CountyCardsPayload), or
        None when it is still the one whose ETag we hold (304)."""
        headers = {"If-None-Match": etag} if etag else {}
        return self._call_unless_unchanged("GET", "/v1/county-cards", SignedRoster, headers=headers)

    def heartbeat(self, hb: Heartbeat) -> HeartbeatAck:
        return self._call("POST", "/v1/heartbeat", HeartbeatAck, json=_dump(hb))

    # ------------------------------------------------------------------ plumbing

    def _call(self, method: str, path: str, model: type[M], **kwargs: Any) -> M:
        parsed = self._call_unless_unchanged(method, path, model, **kwargs)
        if parsed is None:  # only the roster and the county card list are ever "not modified"
            raise PlatformError("bad_response", "unexpected HTTP 304", status=304)
        return parsed

    def _call_unless_unchanged(
        self, method: str, path: str, model: type[M], **kwargs: Any
    ) -> M | None:
        """The validated answer, or None for 304 Not Modified."""
        sent_at = time.monotonic()
        try:
            with self._http.stream(method, path, **kwargs) as response:
                if response.status_code == 304:
                    return None
                body = self._read_limited(response)
        except httpx.DecodingError as exc:
            raise PlatformError("bad_response", f"undecodable body ({exc})") from None
        except httpx.TimeoutException as exc:
            raise PlatformError("network", f"timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise PlatformError("network", f"{type(exc).__name__}: {exc}") from None
        rtt = time.monotonic() - sent_at
        status = response.status_code
        if status >= 400:
            raise _http_error(response, body)
        if status != 200:
            raise PlatformError("bad_response", f"unexpected HTTP {status}", status=status)
        ctype = response.headers.get("content-type", "")
        if not ctype.startswith("application/json"):
            raise PlatformError(
                "bad_response", f"expected JSON, got {ctype or 'no content type'}", status=status
            )
        try:
            parsed = model.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[:3]
            raise PlatformError(
                "bad_response", f"{model.__name__} does not validate: {first}", status=status
            ) from None
        self._note_offset(parsed, rtt)
        return parsed

    def _read_limited(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            raise PlatformError("bad_response", f"response of {declared} bytes refused")
        chunks = bytearray()
        for chunk in response.iter_bytes():
            chunks += chunk
            if len(chunks) > self.max_response_bytes:
                raise PlatformError(
                    "bad_response", f"response larger than {self.max_response_bytes} bytes"
                )
        return bytes(chunks)

    def _note_offset(self, parsed: BaseModel, rtt: float) -> None:
        server_time = getattr(parsed, "server_time", None)
        if isinstance(server_time, dt.datetime):
            # The server stamped its answer about half a round trip before we read it.
            local = self.clock() - dt.timedelta(seconds=rtt / 2)
            self.clock_offset_s = (server_time - local).total_seconds()


def _dump(model: BaseModel) -> Any:
    return model.model_dump(mode="json")


def _http_error(response: httpx.Response, body: bytes) -> PlatformError:
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    detail = body[:200].decode("utf-8", "replace").strip()
    if response.headers.get("content-type", "").startswith("text/html"):
        detail = "HTML error page"
    kind = "auth" if status in (401, 403) else "http"
    return PlatformError(kind, f"HTTP {status}: {detail}", status=status, retry_after=retry_after)
