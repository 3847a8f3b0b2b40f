"""A small HTTP client for the administrative routes, used by the platform's CLI, by
`kiosk demo` and by tests/benchmarks to set up a county: administrator -> operator -> meal
point -> enrolment code -> device.

Works with any httpx.Client whose base_url is the platform (FastAPI's TestClient is one).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx


class AdminError(Exception):
    """The platform refused an administrative request; the message has its answer."""


def _check(resp: httpx.Response, *ok: int) -> Any:
    if resp.status_code not in ok:
        raise AdminError(f"HTTP {resp.status_code}: {resp.text[:300]}")
    return resp.json()


@dataclass
class AdminClient:
    http: httpx.Client
    token: str

    def _post(self, path: str, body: dict[str, Any], *ok: int) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        return _check(self.http.post(path, json=body, headers=headers), *ok)

    def _get(self, path: str, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        return _check(self.http.get(path, params=params, headers=headers), 200)

    def create_operator(self, name: str, township: str) -> str:
        """A township operator; returns its token (shown once)."""
        body = {"name": name, "role": "operator", "township": township}
        return str(self._post("/v1/admin/operators", body, 201)["token"])

    def create_point(
        self, point_id: str, township: str, name: str = "", timezone: str = "Asia/Shanghai"
    ) -> None:
        body = {"point_id": point_id, "township": township, "name": name, "timezone": timezone}
        self._post("/v1/admin/points", body, 200, 201)

    def issue_code(self, point_id: str, ttl_hours: float = 24) -> str:
        path = f"/v1/admin/points/{point_id}/enrolment-codes"
        return str(self._post(path, {"ttl_hours": ttl_hours}, 201)["code"])

    def retire(self, device_id: str, reason: str) -> Any:
        return self._post(f"/v1/admin/devices/{device_id}/retire", {"reason": reason}, 200)

    def rekey(self, device_id: str, reason: str) -> str:
        path = f"/v1/admin/devices/{device_id}/rekey"
        return str(self._post(path, {"reason": reason}, 200)["code"])

    def alerts(self, **params: Any) -> Any:
        return self._get("/v1/admin/alerts", **{k: v for k, v in params.items() if v})

    def verify(self) -> Any:
        return self._post("/v1/admin/verify", {}, 200)


def enrol_device(http: httpx.Client, code: str, device_id: str, point_id: str, public_key: str,
                 proof: str | None = None) -> str:  # fmt: skip
    """Register a terminal's public key with a one-time code; returns the device token."""
    headers = {"Authorization": f"Bearer {code}"}
    if proof:
        headers["X-Device-Proof"] = proof
    body = {"device_id": device_id, "point_id": point_id, "public_key": public_key}
    return str(_check(http.post("/v1/devices", json=body, headers=headers), 201)["token"])


def setup_operator(http: httpx.Client, admin_token: str, township: str, name: str) -> AdminClient:
    """An operator for `township` created by the administrator (for demos and tests)."""
    return AdminClient(http, AdminClient(http, admin_token).create_operator(name, township))


def enrol_with_admin(
    http: httpx.Client,
    admin_token: str,
    device_id: str,
    point_id: str,
    public_key: str,
    *,
    township: str = "default",
    operator: AdminClient | None = None,
) -> str:
    """The whole county path in one call: the administrator registers the point (and an
    operator unless given), the operator issues a code, the device enrols with it."""
    AdminClient(http, admin_token).create_point(point_id, township)
    if operator is None:
        name = f"op-{secrets.token_hex(6)}"
        operator = setup_operator(http, admin_token, township, name)
    code = operator.issue_code(point_id)
    return enrol_device(http, code, device_id, point_id, public_key)
