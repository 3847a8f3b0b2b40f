"""Spoken prompts: real espeak-ng audio, non-silent and of plausible length; never blocking."""

from __future__ import annotations

import array
import datetime as dt
import logging
import math
import shutil
import threading
import time
import wave
from pathlib import Path

import pytest

from hardware.speaker import PHRASES, QuietHours, Speaker

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt install espeak-ng)"
)


def audio(path: Path) -> tuple[float, float]:
    """(seconds, RMS as a fraction of full scale)."""
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        samples = array.array("h", w.readframes(w.getnframes()))
        seconds = w.getnframes() / w.getframerate()
    rms = math.sqrt(sum(s * s for s in samples) / max(1, len(samples))) / 32768
    return seconds, rms


@needs_espeak
def test_a_welcome_with_the_name_is_audible_and_plausibly_long(tmp_path: Path) -> None:
    speaker = Speaker(tmp_path, volume=80, player=None)
    seconds, rms = audio(speaker.render("welcome_meal", "王秀英"))
    assert 1.0 < seconds < 6.0  # "王秀英，请用餐" at a slow rate
    assert rms > 0.02  # not silence
    name_only, _ = audio(speaker.name_wav("王秀英"))
    assert seconds > name_only + 0.5  # the phrase follows the name


@needs_espeak
def test_fixed_phrases_are_prerendered_and_names_cached(tmp_path: Path) -> None:
    speaker = Speaker(tmp_path, player=None)
    speaker.prepare()
    assert sorted(p.stem for p in (tmp_path / "prompts").glob("*.wav")) == sorted(PHRASES)
    seconds, rms = audio(tmp_path / "prompts" / "unknown_card.wav")
    assert 1.5 < seconds < 8.0 and rms > 0.02
    first = speaker.name_wav("李建国")
    mtime = first.stat().st_mtime_ns
    time.sleep(0.01)
    assert speaker.name_wav("李建国") == first and first.stat().st_mtime_ns == mtime


@needs_espeak
def test_volume_and_quiet_hours(tmp_path: Path) -> None:
    now = dt.datetime(2026, 12, 2, 22, 0)
    quiet = QuietHours(dt.time(21, 0), dt.time(7, 0), volume=20)
    speaker = Speaker(tmp_path, volume=80, quiet=quiet, clock=lambda: now, player=None)
    assert speaker.current_volume() == 20
    _, loud = audio(speaker.render("welcome_meal", volume=80))
    _, soft = audio(speaker.render("welcome_meal", volume=20))
    assert soft == pytest.approx(loud / 4, rel=0.05)
    now = dt.datetime(2026, 12, 2, 11, 30)
    assert speaker.current_volume() == 80


def test_say_never_blocks_and_drops_the_oldest(tmp_path: Path) -> None:
    speaker = Speaker(tmp_path, player=None, max_backlog=2)  # thread not started
    started = time.perf_counter()
    for _ in range(50):
        speaker.say("welcome_meal", "王秀英")
    assert time.perf_counter() - started < 0.05
    assert speaker.dropped == 48
    with pytest.raises(KeyError):
        speaker.say("no such phrase")


def test_without_a_player_it_says_so_and_does_nothing(tmp_path: Path) -> None:
    speaker = Speaker(tmp_path, player=None, tts=None)
    assert speaker.status().state == "no_tts"
    stop = threading.Event()
    thread = speaker.start(stop)
    speaker.say("welcome_meal", "王秀英")
    time.sleep(0.2)
    stop.set()
    thread.join(2)
    assert not thread.is_alive() and speaker.spoken == 0


@needs_espeak
def test_playback_runs_the_player_in_its_own_thread(tmp_path: Path) -> None:
    log = tmp_path / "played.txt"
    player = tmp_path / "fake-aplay"
    player.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    player.chmod(0o755)
    speaker = Speaker(tmp_path / "cache", player=[str(player)])
    stop = threading.Event()
    thread = speaker.start(stop)
    speaker.say("dup_lunch", "王秀英")
    deadline = time.monotonic() + 10
    while speaker.spoken == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(2)
    assert speaker.spoken == 1 and speaker.status().state == "ok"
    assert log.read_text().strip().endswith(".wav")


def test_a_failing_player_is_reported_once_with_its_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    player = tmp_path / "no-sound-card"
    player.write_text(
        '#!/bin/sh\necho "aplay: main:831: audio open error: No such device" >&2\nexit 1\n'
    )
    player.chmod(0o755)
    speaker = Speaker(tmp_path / "cache", player=[str(player)])
    with caplog.at_level(logging.WARNING, logger="hardware.speaker"):
        for _ in range(3):
            speaker._speak("dup_lunch", "王秀英")
    status = speaker.status()
    assert status.state == "error" and "audio open error" in status.detail
    assert [r.getMessage() for r in caplog.records].count(
        "speaker: aplay: main:831: audio open error: No such device"
    ) == 1
