"""LLM clients behind the AgentInvoker port: any OpenAI-compatible endpoint, or a fake.

Both take a chat-completions request as the agent runner builds it
(`{"model", "messages", "temperature"?, "max_tokens"?}`) and answer
`{"text", "model", "usage", "finish_reason"}`; every failure is an `EffectFailed`
whose message is recorded in `NodeFailed`. Neither retries: retries belong to the
element, and each attempt is its own pair of events.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec
import openai

from domain.ports import EffectFailed

OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT_S = 120.0
_MAX_DETAIL_CHARS = 300


class FakeAgentInvoker:
    """Answers without a network: the same request always gets the same answer."""

    async def invoke(self, request: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
        users = [m for m in request.get("messages", ()) if m.get("role") == "user"]
        prompt = str(users[-1]["content"]) if users else str(request.get("prompt", ""))
        model = request.get("model") or "fake-model"
        words = len(prompt.split())
        return {
            "text": f"[fake {model}] {prompt}",
            "model": model,
            "usage": {
                "prompt_tokens": words,
                "completion_tokens": words + 2,
                "total_tokens": 2 * words + 2,
            },
            "finish_reason": "stop",
        }

    async def close(self) -> None:
        pass


class OpenAIAgentInvoker:
    """Chat completions on an OpenAI-compatible endpoint (OpenAI, Anthropic, vLLM, Ollama …).

    `base_url` None means OpenAI's own API. The client never retries
    (`max_retries=0`) and each call is bounded by the element's timeout (or
    `default_timeout_s`). The answer is decoded and checked here, at the edge.
    """

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        *,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        """`http_client`: for an endpoint a tenant named, one behind the outbound guard."""
        self._base_url = base_url or OPENAI_BASE_URL
        # Local servers (Ollama, vLLM without --api-key) want no key, but the client needs one.
        self._api_key = api_key
        self._default_timeout_s = default_timeout_s
        self._client = openai.AsyncOpenAI(
            base_url=self._base_url,
            api_key=api_key or "no-key",
            max_retries=0,
            timeout=default_timeout_s,
            http_client=http_client,
        )

    @property
    def endpoint(self) -> str:
        """Scheme, host and port of the endpoint: safe to log (no path, no credentials)."""
        parts = urlsplit(self._base_url)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    async def invoke(self, request: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
        timeout = timeout_s or self._default_timeout_s
        options: dict[str, Any] = {"model": request["model"], "messages": request["messages"]}
        for name in ("temperature", "max_tokens"):
            if request.get(name) is not None:
                options[name] = request[name]
        try:
            raw = await self._client.chat.completions.with_raw_response.create(
                **options, timeout=timeout
            )
        except openai.APITimeoutError:
            raise EffectFailed(f"timed out after {timeout} s") from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise EffectFailed(
                self._clean(f"could not reach the LLM endpoint {self.endpoint}: {cause}")
            ) from None
        except openai.APIStatusError as exc:
            raise EffectFailed(self._clean(_status_message(exc))) from None
        return _answer(raw.content, request["model"])

    async def close(self) -> None:
        await self._client.close()

    def _clean(self, message: str) -> str:
        # Some servers echo the key they refused; it must not reach the event store.
        if self._api_key:
            message = message.replace(self._api_key, "***")
        return message[: _MAX_DETAIL_CHARS * 2]


def _status_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        detail = body["message"]
    elif isinstance(body, str) and body.strip():
        detail = body
    else:
        detail = exc.response.reason_phrase or "no detail"
    detail = detail.strip()[:_MAX_DETAIL_CHARS]
    if exc.status_code == 429:
        return f"rate limited by the LLM endpoint (HTTP 429): {detail}"
    return f"the LLM endpoint answered HTTP {exc.status_code}: {detail}"


class _Message(msgspec.Struct):
    content: str | None = None
    refusal: str | None = None


class _Choice(msgspec.Struct):
    message: _Message
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice]
    model: str | None = None
    usage: _Usage | None = None


_decoder = msgspec.json.Decoder(_Completion)


def _answer(body: bytes, requested_model: str) -> dict[str, Any]:
    """The element's answer from a chat-completions body, or EffectFailed naming what is wrong."""
    try:
        completion = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise EffectFailed(f"malformed answer from the LLM endpoint: {exc}") from None
    if not completion.choices:
        raise EffectFailed("malformed answer from the LLM endpoint: no choices")
    choice = completion.choices[0]
    if choice.message.content is None:
        if choice.message.refusal:
            raise EffectFailed(f"the model refused: {choice.message.refusal[:_MAX_DETAIL_CHARS]}")
        raise EffectFailed("malformed answer from the LLM endpoint: the message has no content")
    usage = completion.usage or _Usage()
    total = usage.total_tokens
    return {
        "text": choice.message.content,
        "model": completion.model or requested_model,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": total
            if total is not None
            else usage.prompt_tokens + usage.completion_tokens,
        },
        "finish_reason": choice.finish_reason,
    }
