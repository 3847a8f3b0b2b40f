"""Which prompt each check-in result gets, and that the bus listener only queues."""

from __future__ import annotations

from kiosk.checkin.rules import CheckinRequest, Method
from kiosk.runtime.services import KioskServices
from kiosk.touchscreen.speech import build_speaker, listener, prompt_for
from tests.support.roster import elder_row


def test_prompts_follow_the_results(services: KioskServices) -> None:
    heard: list[tuple[str, str | None]] = []
    speaker = build_speaker(services)
    speaker.say = lambda phrase, name=None: heard.append((phrase, name))  # type: ignore[method-assign]
    services.bus.add_listener(listener(speaker))
    card = elder_row(1).card_uid
    services.checkin.check_in(CheckinRequest(Method.CARD, card_uid=card))
    services.checkin.check_in(CheckinRequest(Method.CARD, card_uid=card))
    services.checkin.check_in(CheckinRequest(Method.CARD, card_uid="FFFFFFFF"))
    services.checkin.check_in(CheckinRequest(Method.CARD, card_uid=elder_row(3).card_uid))
    assert heard == [
        ("welcome_meal", "王秀英"),
        ("dup_lunch", "王秀英"),
        ("unknown_card", None),
        ("see_staff", "张德明"),
    ]


def test_face_refusals_ask_for_the_card() -> None:
    assert prompt_for({"outcome": "refused", "refusal": "face_unknown"}) == ("use_card", None)
    assert prompt_for({"outcome": "accepted", "service": "cleaning", "elder_name": "王"}) == (
        "welcome_cleaning",
        "王",
    )
