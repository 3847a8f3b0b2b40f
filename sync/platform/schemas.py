"""Request and answer bodies of the platform's administrative routes (not part of the kiosk
protocol, so not in sync/wire.py)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NAME = r"^[A-Za-z0-9._@-]+$"


class Form(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NewCredential(Form):
    """POST /v1/admin/operators (administrator)."""

    name: str = Field(min_length=1, max_length=64, pattern=NAME)
    role: Literal["operator", "admin"] = "operator"
    township: str | None = Field(default=None, min_length=1, max_length=64)


class CredentialIssued(Form):
    name: str
    role: str
    township: str | None
    token: str  # shown once; the platform keeps only its SHA-256


class NewPoint(Form):
    """POST /v1/admin/points (administrator): register a meal point in a township."""

    point_id: str = Field(min_length=1, max_length=64)
    township: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=128)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)


class CodeRequest(Form):
    """POST /v1/admin/points/{point_id}/enrolment-codes (township operator)."""

    ttl_hours: float = Field(default=24, gt=0, le=24 * 7)


class CodeIssued(Form):
    code: str  # shown once
    point_id: str
    device_id: str | None = None  # set for a re-key code
    expires_at: dt.datetime


class RetireRequest(Form):
    reason: str = Field(min_length=1, max_length=500)
