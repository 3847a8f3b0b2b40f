"""The event bus: thread-safe publishing, replay for reconnecting pages, no unbounded queues."""

from __future__ import annotations

import asyncio
import threading

from kiosk.checkin.events import EventBus


def test_ids_increase_and_history_replays_after_an_id() -> None:
    bus = EventBus(history=3)
    ids = [bus.publish("checkin", {"n": n}).id for n in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    assert [e.data["n"] for e in bus.since(3)] == [3, 4]
    assert [e.id for e in bus.since(0)] == [3, 4, 5]  # only the last `history` are kept
    assert [e.data["n"] for e in bus.recent("checkin", 2)] == [3, 4]


def test_events_from_threads_reach_an_asyncio_subscriber() -> None:
    bus = EventBus(history=500, subscriber_queue=500)

    async def main() -> list[int]:
        queue = bus.subscribe()
        workers = [
            threading.Thread(target=lambda: [bus.publish("checkin", {}) for _ in range(50)])
            for _ in range(4)
        ]
        for w in workers:
            w.start()
        got = [(await asyncio.wait_for(queue.get(), 5)).id for _ in range(200)]
        bus.unsubscribe(queue)
        return got

    got = asyncio.run(main())
    assert sorted(got) == list(range(1, 201))
    assert bus.subscriber_count == 0


def test_a_stalled_subscriber_keeps_only_the_newest() -> None:
    bus = EventBus(subscriber_queue=3)

    async def main() -> list[int]:
        queue = bus.subscribe()
        for _ in range(10):
            bus.publish("checkin", {})
        await asyncio.sleep(0.05)  # let the loop run the thread-safe callbacks
        return [queue.get_nowait().id for _ in range(queue.qsize())]

    assert asyncio.run(main()) == [8, 9, 10]
