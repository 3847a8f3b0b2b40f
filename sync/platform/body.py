"""Reading request bodies after authentication, with a cap per route (issue 12, point 3).

Routes never declare a pydantic body parameter: FastAPI would read and parse it before any
dependency (authentication included) runs. They depend on the caller first, then call
`read_json`, which refuses a declared Content-Length over the cap before reading a byte, counts
while streaming, and inflates gzip in bounded chunks.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, TypeVar

from fastapi import HTTPException, Request
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

KB = 1024
MB = 1024 * KB
# Per route, as sent (compressed if gzip). A 5000-record batch is ~3 MB of JSON, ~0.5 MB gzip.
RECORDS_CAP = 16 * MB
RECORDS_INFLATED_CAP = 64 * MB
ROSTER_CAP = 32 * MB  # a township roster of 50,000 elders is ~12 MB of JSON
HEARTBEAT_CAP = 256 * KB
SMALL_CAP = 16 * KB  # checkpoints, registrations, admin forms


async def read_body(request: Request, cap: int, inflated_cap: int | None = None) -> bytes:
    """The body, gunzipped if sent so; 413 past `cap` (or `inflated_cap` once inflated)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, "bad Content-Length")
        if int(declared) > cap:
            raise HTTPException(413, f"body too large for this route (limit {cap} bytes)")
    gzipped = request.headers.get("content-encoding", "").lower() == "gzip"
    limit = inflated_cap if (gzipped and inflated_cap) else cap
    inflater = zlib.decompressobj(wbits=31) if gzipped else None
    raw = 0
    out = bytearray()
    async for chunk in request.stream():
        raw += len(chunk)
        if raw > cap:
            raise HTTPException(413, f"body too large for this route (limit {cap} bytes)")
        if inflater is None:
            out += chunk
            continue
        try:
            # Never more than one byte past the cap: a gzip bomb stops here.
            out += inflater.decompress(chunk, limit + 1 - len(out))
        except zlib.error as exc:
            raise HTTPException(400, f"bad gzip body: {exc}") from None
        if len(out) > limit:
            raise HTTPException(413, "body too large once inflated")
    if inflater is not None and not inflater.eof:
        raise HTTPException(400, "truncated gzip body")
    return bytes(out)


def parse(model: type[M], body: bytes) -> M:
    """Validate JSON into a wire model; 422 listing what was wrong (never the input back)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise HTTPException(422, json.loads(json.dumps(errors, default=str))) from None


async def read_model(
    request: Request, model: type[M], cap: int, inflated_cap: int | None = None
) -> M:
    return parse(model, await read_body(request, cap, inflated_cap))


def body_schema(model: type[BaseModel], *, gzip: bool = False) -> dict[str, Any]:
    """OpenAPI for a body read by hand, so /docs still shows it."""
    description = "JSON body" + (", optionally gzip (Content-Encoding: gzip)" if gzip else "")
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
