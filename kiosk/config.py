"""config.yaml: pydantic models and a loader whose errors name the key path and YAML line.

A technician reads errors like `config.yaml:14 meal.slots[1].end: must be after start`, one per
problem, and a bad file never starts a half-configured daemon. Secrets (device token, keys) are
not part of this file: see `load_secret`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hardware.card_uid import UidFormat
from hardware.readers import reader_parameters
from kiosk.secret_files import read_private_file

SLOT_NAMES = ("breakfast", "lunch", "dinner")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _hhmm(value: Any) -> dt.time:
    if isinstance(value, dt.time):
        return value.replace(second=0, microsecond=0)
    # YAML 1.1 reads an unquoted 11:30 as the sexagesimal integer 690; accept it as minutes.
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return dt.time(value // 60, value % 60)
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        hours, minutes = (int(part) for part in value.strip().split(":"))
        if hours < 24 and minutes < 60:
            return dt.time(hours, minutes)
    raise ValueError(f"expected a time of day as HH:MM, got {value!r}")


class SlotConfig(Strict):
    """A serving window: check-ins inside it count for this slot."""

    name: Literal["breakfast", "lunch", "dinner", "day"]
    start: dt.time
    end: dt.time

    _parse_times = field_validator("start", "end", mode="before")(_hhmm)

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: dt.time, info: ValidationInfo) -> dt.time:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise ValueError(f"must be after start ({start:%H:%M})")
        return end


def _slots_do_not_overlap(slots: list[SlotConfig]) -> list[SlotConfig]:
    names = [s.name for s in slots]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"slot names must be unique; repeated: {', '.join(duplicates)}")
    ordered = sorted(slots, key=lambda s: s.start)
    for a, b in itertools.pairwise(ordered):
        if b.start < a.end:
            raise ValueError(f"slots {a.name} and {b.name} overlap")
    return slots


Slots = Annotated[list[SlotConfig], AfterValidator(_slots_do_not_overlap)]


class MealConfig(Strict):
    enabled: bool = True
    slots: Slots = Field(min_length=1)


class CleaningConfig(Strict):
    """助洁 (laundry and cleaning help): one record per elder per window per day."""

    enabled: bool = False
    slots: Slots = Field(
        default_factory=lambda: [SlotConfig(name="day", start=dt.time(8), end=dt.time(18))]
    )


class SiteConfig(Strict):
    point_id: str = Field(min_length=1, max_length=64)  # 助餐点编号 assigned by the county
    name: str = Field(min_length=1)  # shown on the screen
    timezone: str = "Asia/Shanghai"
    # Refuse elders without a signed three-party 助餐服务协议 (village, elder, guardian).
    require_agreement: bool = True

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class DeviceConfig(Strict):
    device_id: str = Field(min_length=1, max_length=64)  # as registered with the platform

    @field_validator("device_id")
    @classmethod
    def _plain_id(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", value):
            raise ValueError(f"only letters, digits, '.', '_' and '-' are allowed, got {value!r}")
        return value


class WebConfig(Strict):
    # Loopback by default: the touchscreen is on the same machine, and the API is not for the
    # village network.
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # Host header names the web app answers to besides localhost/127.0.0.1/::1 and `host`
    # (e.g. the kiosk's LAN name when `host` is 0.0.0.0); anything else gets 400.
    allowed_hosts: list[str] = Field(default_factory=list)
    # Addresses of reverse proxies whose X-Forwarded-For is believed (for the per-screen PIN
    # limit and the loopback-only routes). Empty: the header is ignored from everyone.
    trusted_proxies: list[str] = Field(default_factory=list)


# Set from the reader entry itself, not from `options`.
RESERVED_READER_PARAMS = {"name", "delivered_as", "device", "port"}


class ReaderConfig(Strict):
    kind: Literal["simulated", "pcsc", "wedge", "serial"]
    name: str = Field(default="reader", min_length=1)
    service: Literal["meal", "cleaning"] = "meal"  # what a tap on this reader records
    # The form the reader sends card numbers in; None = the reader kind's usual form
    # (PC/SC: hex as read; wedge: dec10; serial: hex).
    delivers: UidFormat | None = None
    device: str | None = None  # /dev/input/... (wedge) or /dev/ttyUSB0 (serial)
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _device_where_needed(self) -> ReaderConfig:
        if self.kind in ("wedge", "serial") and not self.device:
            raise ValueError(f"a {self.kind} reader needs `device` (e.g. /dev/ttyUSB0)")
        if self.kind == "pcsc" and self.delivers not in (None, UidFormat.HEX):
            raise ValueError("a pcsc reader always delivers the UID as read (hex)")
        allowed = set(reader_parameters(self.kind)) - RESERVED_READER_PARAMS
        unknown = sorted(set(self.options) - allowed)
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(unknown)} for a {self.kind} reader; "
                f"allowed: {', '.join(sorted(allowed)) or 'none'}"
            )
        return self

    def reader_params(self) -> dict[str, object]:
        """Keyword arguments for `hardware.readers.make_reader`."""
        params: dict[str, object] = {"name": self.name, **self.options}
        if self.delivers is not None:
            params["delivered_as"] = str(self.delivers)
        if self.kind == "wedge":
            params["device"] = self.device
        elif self.kind == "serial":
            params["port"] = self.device
        return params


def _reader_names_unique(readers: list[ReaderConfig]) -> list[ReaderConfig]:
    names = [r.name for r in readers]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"reader names must be unique; repeated: {', '.join(repeated)}")
    return readers


Readers = Annotated[list[ReaderConfig], AfterValidator(_reader_names_unique)]


class RosterConfig(Strict):
    card_format: UidFormat = UidFormat.HEX  # the form card numbers take in the county roster


class CameraConfig(Strict):
    enabled: bool = False
    source: str | int = 0  # device index, /dev/videoN, rtsp://..., or a video file
    loop: bool = False  # video files only: start again at the end (demo)
    # Capture size asked of a device (the driver may refuse); the face defaults assume 640x480.
    width: int | None = Field(default=640, ge=160, le=4096)
    height: int | None = Field(default=480, ge=120, le=4096)


class FaceConfig(Strict):
    """Face check-in; only used when `camera.enabled`. Reasons for the defaults: config.yaml."""

    threshold: float = Field(default=0.45, gt=0.0, lt=1.0)
    min_margin: float = Field(default=0.08, ge=0.0, lt=1.0)
    min_face_px: int = Field(default=64, ge=40, le=1000)
    detect_scale: float = Field(default=1.0, gt=0.0, le=1.0)  # HOG's input scale
    # HOG looks at a copy this small first, at detect_scale only when it finds no face there
    # (null, the default: always detect_scale; kiosk/face/detect.py HogDetector).
    coarse_scale: float | None = Field(default=None, gt=0.0, le=1.0)
    # hog (dlib, everywhere) | yunet (libfacedetection, x86-64 only): templates remember the
    # detector that made them, so a switch means re-enrolment (docs/face.md).
    detector: Literal["hog", "yunet"] = "hog"
    yunet_scale: float = Field(default=0.5, gt=0.0, le=1.0)  # YuNet's input scale
    # parallax: passive, licence-clean (5-point landmarks); blink modes need the 68-point model.
    liveness: Literal["off", "parallax", "blink", "blink+turn"] = "parallax"
    liveness_timeout_s: float = Field(default=6.0, ge=1.0, le=60.0)
    # A face check-in needs agree_frames of the last agree_window analysed frames to match
    # the same elder (1 and 1: every frame decides on its own).
    agree_frames: int = Field(default=2, ge=1, le=10)
    agree_window: int = Field(default=3, ge=1, le=10)
    # ... or the mean encoding of at least agree_frames of them, all nearest the same elder,
    # to match him (kiosk/face/fusion.py: sensor noise averages out over frames).
    fuse_frames: bool = True
    # Templates that follow ageing: keep a confident, live-checked check-in frame as a new
    # template (kiosk/face/templates.py `adapt`; reversible with `kiosk face revert`).
    learn_templates: bool = True
    # Augmented views of each enrolment image (kiosk/face/augment.py): fewer false rejects on
    # dark, soft frames, but a photo on a screen matches more often too. Off: config.yaml.
    augment_templates: bool = False
    card_evidence: Literal["off", "evidence", "require"] = "evidence"
    rearm_after_s: float = Field(default=10.0, ge=1.0, le=3600.0)

    @field_validator("liveness", "card_evidence", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted `off` as the boolean false.
        return "off" if value is False else value

    @field_validator("detector")
    @classmethod
    def _detector_installed(cls, value: str) -> str:
        if value == "yunet":
            from kiosk.face.detect_yunet import yunet_unavailable  # only when asked for

            reason = yunet_unavailable()
            if reason is not None:
                raise ValueError(reason)
        return value

    @model_validator(mode="after")
    def _agreement_fits(self) -> FaceConfig:
        if self.agree_frames > self.agree_window:
            raise ValueError(
                f"agree_frames ({self.agree_frames}) cannot exceed agree_window "
                f"({self.agree_window})"
            )
        return self


class PlatformConfig(Strict):
    url: str | None = None  # county platform base URL; None = offline only
    upload_interval_s: int = Field(default=60, ge=5, le=86400)
    batch_size: int = Field(default=500, ge=1, le=5000)
    checkpoint_interval_s: int = Field(default=60, ge=5, le=86400)
    roster_interval_s: int = Field(default=900, ge=30, le=86400)
    heartbeat_interval_s: int = Field(default=300, ge=10, le=86400)
    # Per-day count comparison with the platform; a run skipped while the link was down is made
    # up as soon as the platform answers again.
    reconcile_interval_s: int = Field(default=6 * 3600, ge=60, le=7 * 86400)
    reconcile_days: int = Field(default=35, ge=1, le=400)  # how far back each run looks
    # The platform's Ed25519 public key (base64) that signs rosters; without it no roster is
    # pulled (an unverifiable roster must never be applied).
    public_key: str | None = Field(default=None, min_length=40, max_length=64)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class RoamingConfig(Strict):
    # Serve elders of other points of the county (全城通) found on the signed county card list:
    # their meals are recorded with the flag "visitor". Off: their cards are unknown here.
    accept_visitors: bool = False


class LoggingConfig(Strict):
    level: LogLevel = "INFO"
    # Per-module levels, e.g. {sync: DEBUG, hardware.pcsc_reader: DEBUG} while diagnosing.
    levels: dict[str, LogLevel] = Field(default_factory=dict)


class SpeechConfig(Strict):
    """Spoken feedback after every check-in (hardware/speaker.py)."""

    enabled: bool = True
    volume: int = Field(default=80, ge=0, le=100)  # percent
    # Quiet hours (e.g. 21:00-07:00, may wrap midnight): speak at quiet_volume (0 = silent).
    quiet_start: dt.time | None = None
    quiet_end: dt.time | None = None
    quiet_volume: int = Field(default=30, ge=0, le=100)
    voice: str = "cmn"  # espeak-ng voice for names
    rate: int = Field(default=130, ge=80, le=300)  # words per minute; slow for old ears

    _parse_times = field_validator("quiet_start", "quiet_end", mode="before")(
        lambda v: None if v is None else _hhmm(v)
    )


class UiConfig(Strict):
    """The caregiver's touchscreen: who counts as a regular diner, PIN and session rules."""

    # A regular diner ate at least `missing_min_days` of the last `missing_of_last` service days.
    missing_min_days: int = Field(default=3, ge=1, le=60)
    missing_of_last: int = Field(default=5, ge=1, le=60)
    session_minutes: int = Field(default=15, ge=1, le=720)  # caregiver session after the PIN
    pin_max_failures: int = Field(default=5, ge=1, le=20)  # then the caregiver is locked
    pin_lock_minutes: int = Field(default=15, ge=1, le=1440)

    @model_validator(mode="after")
    def _days_fit(self) -> UiConfig:
        if self.missing_min_days > self.missing_of_last:
            raise ValueError("missing_min_days must not exceed missing_of_last")
        return self


class KioskConfig(Strict):
    site: SiteConfig
    device: DeviceConfig
    meal: MealConfig
    cleaning: CleaningConfig = Field(default_factory=CleaningConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    readers: Readers = Field(default_factory=list)
    roster: RosterConfig = Field(default_factory=RosterConfig)
    camera: CameraConfig = Field(default_factory=CameraConfig)
    face: FaceConfig = Field(default_factory=FaceConfig)
    platform: PlatformConfig = Field(default_factory=PlatformConfig)
    roaming: RoamingConfig = Field(default_factory=RoamingConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    speech: SpeechConfig = Field(default_factory=SpeechConfig)
    ui: UiConfig = Field(default_factory=UiConfig)

    def slots_for(self, service: str) -> list[SlotConfig]:
        section = self.meal if service == "meal" else self.cleaning
        return list(section.slots) if section.enabled else []


# ----------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; `problems` holds one entry per problem."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _line_index(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    """Map every key path in the YAML document to its 1-based line."""
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            out[child] = key.start_mark.line + 1
            _line_index(value, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, (*path, i), out)


def _format_loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


_FRIENDLY = {
    "missing": "required key is missing",
    "extra_forbidden": "unknown key (misspelt, or not valid here)",
}


def _problem_from_error(err: Any, file: str, lines: dict[tuple[Any, ...], int]) -> ConfigProblem:
    # Drop pydantic's internal loc parts (e.g. function-after[...]) that are not YAML keys.
    loc = tuple(p for p in err["loc"] if isinstance(p, int) or "[" not in str(p))
    line = None
    for depth in range(len(loc), -1, -1):
        if loc[:depth] in lines:
            line = lines[loc[:depth]]
            break
    message = _FRIENDLY.get(err["type"], err["msg"])
    message = message.removeprefix("Value error, ")
    return ConfigProblem(file, line, _format_loc(loc), message)


MAX_CONFIG_BYTES = 256 * 1024  # a real config.yaml is a few KB


def _refuse_aliases(text: str, file: str) -> None:
    """No `*alias` at all: nested aliases ("billion laughs") expand exponentially in whatever
    walks the document. Scanning parser events is linear in the text and builds nothing."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1 if event.start_mark else None
            raise ConfigError(
                [ConfigProblem(file, line, "", "YAML aliases (*name) are not allowed here; "
                               "write the value out in full")]
            )  # fmt: skip


def parse_config(text: str, file: str = "config.yaml") -> KioskConfig:
    """Validate YAML text; raise ConfigError listing every problem with its line."""
    if len(text.encode("utf-8", "replace")) > MAX_CONFIG_BYTES:
        raise ConfigError(
            [ConfigProblem(file, None, "", f"larger than {MAX_CONFIG_BYTES // 1024} KB: not a "
                           "kiosk configuration")]
        )  # fmt: skip
    try:
        _refuse_aliases(text, file)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem(file, line, "", f"not valid YAML: {reason}")]) from None
    if root is None or not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ConfigError([ConfigProblem(file, 1, "", f"expected a mapping of keys, got {kind}")])
    lines: dict[tuple[Any, ...], int] = {}
    _line_index(root, (), lines)
    try:
        return KioskConfig.model_validate(data)
    except ValidationError as exc:
        problems = [_problem_from_error(e, file, lines) for e in exc.errors()]
        raise ConfigError(problems) from None


def load_config(path: Path) -> KioskConfig:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)  # never more than the cap into memory
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read: {exc}")]) from None
    return parse_config(text, file=str(path))


def _loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def config_warnings(config: KioskConfig) -> list[str]:
    """Valid but risky settings, for `kiosk validate-config` and `kiosk doctor`."""
    warnings = []
    url = config.platform.url
    if url and url.lower().startswith("http://"):
        host = urlsplit(url).hostname or ""
        if not _loopback_host(host):
            warnings.append(
                f"platform.url {url} is plain http to another machine: the device token, "
                "records and rosters cross the network unencrypted; use https://"
            )
    if not _loopback_host(config.web.host):
        warnings.append(
            f"web.host {config.web.host} opens the caregiver pages to the network, not just this "
            "screen; keep 127.0.0.1 unless a second screen needs them (and then list its name "
            "in web.allowed_hosts)"
        )
    return warnings


def mask_url(source: object) -> str:
    """A URL fit for a log or a screen: the password in it (rtsp://user:pw@cam/...) masked."""
    text = str(source)
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if parts.password is None:
        return text
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


# ----------------------------------------------------------------------------- secrets


def load_secret(name: str) -> str | None:
    """A secret such as `device-token`, never from config.yaml.

    Looked up in the environment (`KIOSK_DEVICE_TOKEN`), then in the systemd credentials
    directory (`$CREDENTIALS_DIRECTORY/device-token`, from LoadCredential=). A credential file
    that is a symlink or readable by others raises `SecretFileError` (kiosk/secret_files.py).
    """
    env_name = "KIOSK_" + name.upper().replace("-", "_")
    if value := os.environ.get(env_name):
        return value
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        path = Path(cred_dir) / name
        try:  # raises SecretFileError for a symlink or a file others may read
            return read_private_file(path, group_read_ok=True).decode("utf-8").strip()
        except FileNotFoundError:
            return None
    return None
