"""The `http` element's port: an httpx client with a response-size cap."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from domain.ports import EffectFailed

MAX_RESPONSE_BYTES = 1 << 20


class HttpxRequester:
    def __init__(self, max_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self._client = httpx.AsyncClient(follow_redirects=False)
        self._max_bytes = max_bytes

    async def request(self, request: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
        body = request.get("body")
        kwargs: dict[str, Any] = {"headers": request.get("headers") or {}}
        if body is not None:
            if isinstance(body, str | bytes):
                kwargs["content"] = body
            else:
                kwargs["json"] = body
        async with self._client.stream(
            request.get("method", "GET"), request["url"], timeout=timeout_s or 30.0, **kwargs
        ) as response:
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._max_bytes:
                    raise EffectFailed(f"response larger than {self._max_bytes} bytes")
                chunks.append(chunk)
        raw = b"".join(chunks)
        accepted = request.get("accept_status")
        ok = response.status_code in accepted if accepted else 200 <= response.status_code < 300
        if not ok:
            raise EffectFailed(f"HTTP {response.status_code} from {request['url']}")
        parsed: Any = raw.decode(errors="replace")
        if "json" in response.headers.get("content-type", ""):
            try:
                parsed = msgspec.json.decode(raw)
            except msgspec.DecodeError:
                pass
        return {"status": response.status_code, "headers": dict(response.headers), "body": parsed}

    async def close(self) -> None:
        await self._client.aclose()
