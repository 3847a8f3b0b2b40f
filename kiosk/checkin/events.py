"""A small event bus from worker threads to the web page's server-sent-event streams.

Publishers are threads (card readers, the face worker); subscribers are asyncio tasks (one per
open page). Each event gets an increasing id and the last few hundred are kept, so a page that
reconnects with `Last-Event-ID` receives what it missed instead of a silent gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    id: int
    kind: str  # "checkin", "status", ...
    data: dict[str, Any]
    at: float = field(default_factory=time.time)


class EventBus:
    def __init__(self, history: int = 200, subscriber_queue: int = 100) -> None:
        self._ids = itertools.count(1)
        self._history: deque[Event] = deque(maxlen=history)
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]] = set()
        self._lock = threading.Lock()
        self._queue_size = subscriber_queue
        self._listeners: list[Callable[[Event], None]] = []

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Call `listener` synchronously, in the publishing thread, for every event.

        For cheap bookkeeping (metrics) only: a slow listener delays the check-in feedback.
        """
        with self._lock:
            self._listeners.append(listener)

    def publish(self, kind: str, data: dict[str, Any]) -> Event:
        """Thread-safe; never blocks on a slow page."""
        with self._lock:
            event = Event(next(self._ids), kind, data)
            self._history.append(event)
            subscribers = list(self._subscribers)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # bookkeeping must never break a check-in
                log.exception("event listener failed")
        for loop, queue in subscribers:
            # A closed loop means that page is going away; it unsubscribes itself.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._offer, queue, event)
        return event

    @staticmethod
    def _offer(queue: asyncio.Queue[Event], event: Event) -> None:
        if queue.full():  # a stalled page loses its oldest events, not the kiosk its memory
            queue.get_nowait()
        queue.put_nowait(event)

    def since(self, last_id: int) -> list[Event]:
        with self._lock:
            return [e for e in self._history if e.id > last_id]

    def recent(self, kind: str, limit: int) -> list[Event]:
        with self._lock:
            return [e for e in self._history if e.kind == kind][-limit:]

    def subscribe(self) -> asyncio.Queue[Event]:
        """Call from the subscriber's event loop."""
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        with self._lock:
            self._subscribers.add((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        with self._lock:
            self._subscribers = {s for s in self._subscribers if s[1] is not queue}

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)
