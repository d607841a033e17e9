"""Agent invokers: a deterministic fake (the offline default) behind the AgentInvoker port."""

from __future__ import annotations

from typing import Any


class FakeAgentInvoker:
    """Answers without a network: the same request always gets the same answer."""

    async def invoke(self, request: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
        prompt = str(request.get("prompt", ""))
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
        }
