"""Spoken feedback: Mandarin prompts after each check-in, played without blocking anyone.

Fixed phrases ("请用餐", "今天午餐已经签过了", ...) are rendered once to WAV files in the cache
directory (`prepare()`, at start); a name is rendered by espeak-ng's Mandarin voice the first
time it is needed and cached per name. An utterance is name + phrase joined into one WAV at the
volume of the moment (quieter, or silent, in the configured quiet hours) and played by aplay or
paplay in the speaker's own thread. Without a player the speaker only reports so in `status()`;
without espeak-ng the prompts are skipped the same way. `say()` only queues: a check-in never
waits for audio, and a backlog drops the oldest prompt (a newer tap matters more).

This module imports nothing of the kiosk's, so it can be tested alone.
"""

from __future__ import annotations

import array
import datetime as dt
import hashlib
import logging
import queue
import shutil
import subprocess
import sys
import threading
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Fixed phrases, pre-rendered at start. Keys are what callers pass to `say`.
PHRASES = {
    "welcome_meal": "请用餐",
    "welcome_cleaning": "助洁登记好了",
    "dup_breakfast": "今天早餐已经签过了",
    "dup_lunch": "今天午餐已经签过了",
    "dup_dinner": "今天晚餐已经签过了",
    "dup_day": "今天已经登记过了",
    "unknown_card": "这张卡没有登记，请找工作人员",
    "invalid_card": "没有读到卡，请再刷一次",
    "outside_hours": "现在不是用餐时间",
    "see_staff": "请找工作人员",
    "use_card": "没有认出来，请刷卡",
    "face_camera": "请看着摄像头再刷卡",
    "fault": "机器出了故障，请找工作人员",
}
TTS_TIMEOUT_S = 10.0
PLAY_TIMEOUT_S = 15.0
GAP_S = 0.15  # silence between name and phrase


@dataclass(frozen=True)
class SpeakerStatus:
    state: str  # ok | no_tts | no_player | error
    player: str | None  # the program that plays the WAV files (aplay, paplay)
    spoken: int
    dropped: int  # prompts dropped from a backlog
    detail: str  # the last error, "" when the last prompt played


@dataclass(frozen=True)
class QuietHours:
    start: dt.time
    end: dt.time  # may be earlier than start: wraps midnight
    volume: int  # percent during quiet hours; 0 = silent

    def contains(self, t: dt.time) -> bool:
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


def find_player() -> list[str] | None:
    if shutil.which("aplay"):
        return ["aplay", "-q"]
    if shutil.which("paplay"):
        return ["paplay"]
    return None


class Speaker:
    def __init__(
        self,
        cache_dir: Path,
        *,
        volume: int = 80,
        quiet: QuietHours | None = None,
        voice: str = "cmn",
        rate: int = 130,
        clock: Callable[[], dt.datetime] | None = None,
        player: list[str] | bool | None = True,  # True: find aplay/paplay; None: none
        tts: str | None = "espeak-ng",
        max_backlog: int = 3,
    ) -> None:
        self.cache_dir = cache_dir
        self.volume = volume
        self.quiet = quiet
        self.voice = voice
        self.rate = rate
        self.clock = clock or (lambda: dt.datetime.now().astimezone())
        self.player = find_player() if player is True else (player or None)
        self.tts = shutil.which(tts) if tts else None
        self._queue: queue.Queue[tuple[str, str | None]] = queue.Queue(max_backlog)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.spoken = 0
        self.dropped = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ public

    def status(self) -> SpeakerStatus:
        if self.tts is None:
            state = "no_tts"
        elif self.player is None:
            state = "no_player"
        elif self.last_error:
            state = "error"
        else:
            state = "ok"
        return SpeakerStatus(
            state=state,
            player=self.player[0] if self.player else None,
            spoken=self.spoken,
            dropped=self.dropped,
            detail=self.last_error or "",
        )

    def current_volume(self) -> int:
        if self.quiet and self.quiet.contains(self.clock().time()):
            return self.quiet.volume
        return self.volume

    def say(self, phrase: str, name: str | None = None) -> None:
        """Queue a prompt; never blocks. Unknown phrase keys are a programming error."""
        if phrase not in PHRASES:
            raise KeyError(phrase)
        while True:
            try:
                self._queue.put_nowait((phrase, name))
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def start(self, stop: threading.Event) -> threading.Thread:
        self._thread = threading.Thread(target=self._run, args=(stop,), name="speaker", daemon=True)
        self._thread.start()
        return self._thread

    def prepare(self) -> None:
        """Render the fixed phrases (once; they stay in the cache)."""
        for key in PHRASES:
            self.phrase_wav(key)

    def render(self, phrase: str, name: str | None = None, volume: int | None = None) -> Path:
        """The utterance as one WAV (name, short pause, phrase) at `volume` percent."""
        parts = [self.name_wav(name)] if name else []
        parts.append(self.phrase_wav(phrase))
        volume = self.current_volume() if volume is None else volume
        key = hashlib.sha1(f"{phrase}|{name}|{volume}".encode()).hexdigest()[:16]
        out = self.cache_dir / "utterances" / f"{key}.wav"
        if not out.exists():
            _join_wavs(parts, out, volume / 100.0, GAP_S)
        return out

    # ------------------------------------------------------------------ rendering

    def phrase_wav(self, key: str) -> Path:
        return self._tts(PHRASES[key], self.cache_dir / "prompts" / f"{key}.wav")

    def name_wav(self, name: str) -> Path:
        digest = hashlib.sha1(name.encode()).hexdigest()[:16]
        return self._tts(name, self.cache_dir / "names" / f"{digest}.wav")

    def _tts(self, text: str, path: Path) -> Path:
        if path.exists():
            return path
        if self.tts is None:
            raise RuntimeError("espeak-ng is not installed (apt install espeak-ng)")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.wav")
        subprocess.run(
            [self.tts, "-v", self.voice, "-s", str(self.rate), "-w", str(partial), text],
            check=True,
            capture_output=True,
            timeout=TTS_TIMEOUT_S,
        )
        # espeak-ng exits 0 even when the disk filled under it: a truncated WAV must never
        # enter the cache, or every later prompt using it fails until someone deletes it.
        try:
            with wave.open(str(partial), "rb") as w:
                complete = w.getnframes() > 0
        except (EOFError, wave.Error):
            complete = False
        if not complete:
            partial.unlink(missing_ok=True)
            raise OSError(f"rendering {path.name} left an incomplete WAV (disk full?)")
        partial.replace(path)
        return path

    # ------------------------------------------------------------------ playback thread

    def _run(self, stop: threading.Event) -> None:
        try:
            if self.tts is not None:
                self.prepare()
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
            self.last_error = f"prepare: {exc}"
            log.warning("speaker: could not pre-render prompts: %s", exc)
        while not stop.is_set():
            try:
                phrase, name = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._speak(phrase, name)
            except Exception as exc:  # the speaker thread must outlive any one prompt
                self.last_error = str(exc)
                log.exception("speaker: prompt %s failed", phrase)

    def _speak(self, phrase: str, name: str | None) -> None:
        volume = self.current_volume()
        if volume <= 0 or self.tts is None:
            return
        try:
            wav = self.render(phrase, name, volume)
            if self.player is None:
                return  # nothing to play on: status() says so
            subprocess.run(
                [*self.player, str(wav)], check=True, capture_output=True, timeout=PLAY_TIMEOUT_S
            )
            self.spoken += 1
            self.last_error = None
        except (EOFError, wave.Error) as exc:
            # A damaged cached WAV (written before the check above existed, or by a full
            # disk): drop the cache entries so the next prompt renders them afresh.
            self.last_error = str(exc)
            log.warning("speaker: damaged cached audio, re-rendering next time: %s", exc)
            for part in self.cache_dir.glob("*/*.wav"):
                _drop_if_damaged(part)
        except subprocess.CalledProcessError as exc:
            # The player's own words say why (aplay: "audio open error: No such file..."):
            # no sound card, muted, busy.
            said = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
            self._failed(said[-1] if said else str(exc))
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
            self._failed(str(exc))

    def _failed(self, problem: str) -> None:
        """Say a problem once, not once a check-in: a lunch rush without a sound card would
        otherwise fill the journal. status() keeps showing it until a prompt plays again."""
        if problem != self.last_error:
            log.warning("speaker: %s", problem)
        self.last_error = problem


def _drop_if_damaged(path: Path) -> None:
    try:
        with wave.open(str(path), "rb") as w:
            if w.getnframes() > 0:
                return
    except (EOFError, wave.Error, OSError):
        pass
    path.unlink(missing_ok=True)


def _join_wavs(parts: list[Path], out: Path, gain: float, gap_s: float) -> None:
    """Concatenate same-format 16-bit WAVs with a pause between them, scaled by `gain`."""
    samples = array.array("h")
    params = None
    for i, part in enumerate(parts):
        with wave.open(str(part), "rb") as w:
            if params is None:
                params = w.getparams()
            elif (w.getframerate(), w.getsampwidth(), w.getnchannels()) != (
                params.framerate,
                params.sampwidth,
                params.nchannels,
            ):
                raise wave.Error(f"{part}: format differs from {parts[0]}")
            if w.getsampwidth() != 2:
                raise wave.Error(f"{part}: expected 16-bit samples")
            chunk = array.array("h")
            chunk.frombytes(w.readframes(w.getnframes()))
            if sys.byteorder == "big":
                chunk.byteswap()
        if i:
            samples.extend([0] * int(params.framerate * params.nchannels * gap_s))
        samples.extend(chunk)
    assert params is not None
    if gain != 1.0:
        samples = array.array("h", (max(-32768, min(32767, int(s * gain))) for s in samples))
    if sys.byteorder == "big":
        samples.byteswap()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial.wav")
    with wave.open(str(partial), "wb") as w:
        w.setnchannels(params.nchannels)
        w.setsampwidth(2)
        w.setframerate(params.framerate)
        w.writeframes(samples.tobytes())
    partial.replace(out)
