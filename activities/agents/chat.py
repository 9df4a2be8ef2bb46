"""The HTTP agent runtime: an OpenAI-compatible chat-completions endpoint.

`POST {base_url}/chat/completions` with the prompt as the user message and the context as JSON
beside it. The result is `{"content", "model", "finish_reason", "usage"}`, plus `"json"` when
the answer's content is itself a JSON object.

Errors: 408, 409, 429 and 5xx and an unreachable endpoint are retried (with the endpoint's
`Retry-After` when it gives one); any other 4xx, or an answer without a message, fails the
session with the endpoint's words.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
from pydantic import SecretStr

import durable

from .runtime import (
    AgentRuntime,
    AgentRuntimeError,
    AgentTimedOut,
    AgentUnavailable,
    RuntimeIO,
    RuntimeRequest,
)

SYSTEM_PROMPT = (
    "You are an agent working for a project-management assistant. Answer the user's request "
    "using the JSON context given with it. When asked for structured output, answer JSON."
)
RETRYABLE = {408, 409, 429}
MAX_BODY_QUOTE = 500


class ChatCompletionsRuntime(AgentRuntime):
    """Ask `model` at `base_url` (e.g. `https://api.openai.com/v1`, or a local server).

    Args:
        base_url: The API root; `/chat/completions` is appended.
        model: The model name sent with each request.
        api_key: Sent as a bearer token when given; never logged or stored in transcripts.
        transport: For tests; default: real HTTP.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: SecretStr | None = None,
        system_prompt: str = SYSTEM_PROMPT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._api_key = api_key
        self.system_prompt = system_prompt
        self._transport = transport

    @property
    def description(self) -> str:
        return f"chat completions {self.model} at {self.url}"

    def _body(self, request: RuntimeRequest) -> dict[str, Any]:
        user = request.prompt
        if request.context:
            user += "\n\nContext (JSON):\n" + json.dumps(request.context, indent=2)
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": self.system_prompt},
                {"role": "user", "content": user},
            ],
        }

    async def run(self, request: RuntimeRequest, io: RuntimeIO) -> Any:
        body = self._body(request)
        io.transcript.add("request", json.dumps(body))
        headers = {"content-type": "application/json"}
        if self._api_key is not None:
            headers["authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        await io.progress(f"asking {self.model}")
        try:
            async with httpx.AsyncClient(
                transport=self._transport, timeout=request.timeout_seconds
            ) as client:
                response = await client.post(self.url, json=body, headers=headers)
        except httpx.TimeoutException:
            raise AgentTimedOut(
                f"{self.url} did not answer within {request.timeout_seconds:g} s"
            ) from None
        except httpx.TransportError as err:
            raise AgentUnavailable(f"cannot reach {self.url}: {err or type(err).__name__}") from err
        io.transcript.add("response", response.text)
        _check_status(self.url, response)
        result = _result(self.url, response)
        usage = result.get("usage") or {}
        tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
        await io.progress(
            f"answered by {result['model'] or self.model}"
            + (f" ({tokens} tokens)" if tokens is not None else "")
        )
        return result


def _quote(response: httpx.Response) -> str:
    text = response.text.strip()
    return text if len(text) <= MAX_BODY_QUOTE else text[:MAX_BODY_QUOTE] + "..."


def _check_status(url: str, response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    said = f"{url} answered {status}: {_quote(response)}"
    if status in RETRYABLE or status >= 500:
        after = _retry_after(response)
        if after is not None:
            raise durable.RetryAfter(said, after)
        raise AgentUnavailable(said)
    raise AgentRuntimeError(said)


def _retry_after(response: httpx.Response) -> timedelta | None:
    value = response.headers.get("retry-after", "")
    try:
        return timedelta(seconds=float(value))
    except ValueError:
        return None


def _result(url: str, response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
        choice = answer["choices"][0]
        content = choice["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise AgentRuntimeError(
            f"{url} answered without a chat completion (expected choices[0].message.content): "
            f"{_quote(response)}"
        ) from None
    result: dict[str, Any] = {
        "content": content if isinstance(content, str) else json.dumps(content),
        "model": str(answer.get("model") or ""),
        "finish_reason": choice.get("finish_reason"),
        "usage": answer.get("usage"),
    }
    if isinstance(content, str):
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            result["json"] = parsed
    return result
