"""The runtimes on their own: the command runtime's protocol and failures, and the HTTP runtime
against a small OpenAI-compatible endpoint served on 127.0.0.1 (real HTTP); then an agent
session end to end through that endpoint."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

import durable
from activities.agents import (
    AgentRuntimeError,
    AgentTimedOut,
    AgentUnavailable,
    ChatCompletionsRuntime,
    CommandRuntime,
    RuntimeIO,
    RuntimeRequest,
    Transcript,
    local_agent_command,
)

from .conftest import Agents
from .workflows import ParentInput, ParentOutput


class Reported:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.transcript = Transcript()

    async def progress(self, line: str) -> None:
        self.lines.append(line)

    @property
    def io(self) -> RuntimeIO:
        return RuntimeIO(self.progress, self.transcript)


def request(context: dict[str, Any] | None = None, timeout: float = 10.0) -> RuntimeRequest:
    return RuntimeRequest(
        session_id="s-1", prompt="hello agent", context=context or {}, timeout_seconds=timeout
    )


def script(tmp_path: Path, body: str) -> CommandRuntime:
    path = tmp_path / "agent.py"
    path.write_text(body)
    return CommandRuntime([sys.executable, str(path)], kill_grace=0.5)


# --- the command runtime -----------------------------------------------------------------------


async def test_the_local_agent_answers_with_progress_and_a_result() -> None:
    seen = Reported()
    context = {"issues": [{"id": "A", "title": "Security: token leak in logs"}]}
    result = await CommandRuntime(local_agent_command()).run(request(context), seen.io)
    assert result["proposals"] == [
        {
            "issue_id": "A",
            "identifier": "",
            "labels": ["security"],
            "priority": 1,
            "owner": "",  # no assignee and no members to choose from
            "reason": "matched security",
        }
    ]
    assert seen.lines[1:] == ["read a prompt of 11 character(s)", "triaging 1 issue(s)", "done"]
    stdin = json.loads(seen.transcript.entries[0]["text"])
    assert stdin == {"session_id": "s-1", "prompt": "hello agent", "context": context}


async def test_stderr_is_captured_and_quoted_when_the_agent_fails(tmp_path: Path) -> None:
    runtime = script(
        tmp_path,
        "import sys\nsys.stderr.write('Traceback: KeyError: model\\n')\nsys.exit(7)\n",
    )
    seen = Reported()
    with pytest.raises(AgentRuntimeError) as err:
        await runtime.run(request(), seen.io)
    assert (
        str(err.value) == "the agent exited with status 7; stderr ends: Traceback: KeyError: model"
    )
    assert err.value.kind == "AgentRuntimeError"
    assert [e["stream"] for e in seen.transcript.entries] == ["stdin", "stderr"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("print('[1, 2]')", "the agent printed JSON that is not a message on stdout line 1"),
        ("print('{\"answer\": 42}')", "the agent printed JSON that is not a message"),
        ('print(\'{"progress": "x"}\')', "the agent exited without printing a result line"),
        (
            "print('{\"result\": 1}')\nprint('{\"result\": 2}')",
            "the agent printed a second result on line 2",
        ),
    ],
)
async def test_output_that_breaks_the_protocol_is_a_readable_error(
    tmp_path: Path, body: str, message: str
) -> None:
    with pytest.raises(AgentRuntimeError, match=re.escape(message)):
        await script(tmp_path, body).run(request(), Reported().io)


async def test_an_agent_that_ignores_sigterm_is_killed_at_its_timeout(tmp_path: Path) -> None:
    runtime = script(
        tmp_path,
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        'print(\'{"progress": "stubborn"}\', flush=True)\ntime.sleep(60)\n',
    )
    seen = Reported()
    started = asyncio.get_running_loop().time()
    with pytest.raises(AgentTimedOut, match="did not finish within 1 s"):
        await runtime.run(request(timeout=1.0), seen.io)
    assert asyncio.get_running_loop().time() - started < 5
    assert seen.lines == ["stubborn"]


async def test_cancelling_the_run_stops_the_agent_and_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    runtime = script(
        tmp_path,
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        'print(\'{"progress": "spawned"}\', flush=True)\ntime.sleep(60)\n',
    )
    seen = Reported()
    task = asyncio.create_task(runtime.run(request(timeout=60), seen.io))
    for _ in range(100):
        if seen.lines:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    child = int(pid_file.read_text())
    for _ in range(50):
        try:
            with open(f"/proc/{child}/stat") as stat:
                if stat.read().split()[2] == "Z":
                    break  # dead, waiting for its (killed) parent's reaper
        except FileNotFoundError:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the agent's child survived the cancellation")


# --- the HTTP runtime --------------------------------------------------------------------------


class FakeChat(BaseHTTPRequestHandler):
    """An OpenAI-compatible /chat/completions; the requested model picks the answer."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        FakeChat.seen.append(
            {"path": self.path, "auth": self.headers.get("authorization"), "body": body}
        )
        model = body["model"]
        if self.path != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
        elif model == "triage-json":
            content = json.dumps({"labels": ["bug"], "priority": 1})
            self._send(
                200,
                {
                    "id": "chatcmpl-1",
                    "model": "triage-json-0613",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49},
                },
            )
        elif model == "missing":
            self._send(404, {"error": {"message": "The model `missing` does not exist"}})
        elif model == "busy":
            self._send(429, {"error": {"message": "slow down"}}, {"retry-after": "7"})
        elif model == "down":
            self._send(503, {"error": {"message": "overloaded"}})
        else:
            self._send(200, {"object": "something else"})


@pytest.fixture(scope="module")
def chat_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeChat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


async def test_the_http_runtime_asks_the_endpoint_and_reads_its_answer(chat_url: str) -> None:
    FakeChat.seen.clear()
    runtime = ChatCompletionsRuntime(chat_url, "triage-json", api_key=SecretStr("sk-secret"))
    seen = Reported()
    result = await runtime.run(request({"issues": [{"id": "A"}]}), seen.io)
    assert result["json"] == {"labels": ["bug"], "priority": 1}
    assert result["model"] == "triage-json-0613" and result["finish_reason"] == "stop"
    assert seen.lines == ["asking triage-json", "answered by triage-json-0613 (49 tokens)"]
    (sent,) = FakeChat.seen
    assert sent["auth"] == "Bearer sk-secret"
    messages = sent["body"]["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["content"].startswith("hello agent\n\nContext (JSON):\n")
    assert "sk-secret" not in json.dumps(seen.transcript.entries), "no secret in transcripts"


async def test_http_errors_fail_or_retry_as_they_should(chat_url: str) -> None:
    def ask(model: str) -> Any:
        return ChatCompletionsRuntime(chat_url, model).run(request(), Reported().io)

    with pytest.raises(AgentRuntimeError, match=r"answered 404: .*`missing` does not exist"):
        await ask("missing")
    with pytest.raises(durable.RetryAfter) as later:
        await ask("busy")
    assert later.value.delay == timedelta(seconds=7)
    with pytest.raises(AgentUnavailable, match="answered 503"):
        await ask("down")
    with pytest.raises(AgentRuntimeError, match=r"without a chat completion .*something else"):
        await ask("odd")
    unreachable = ChatCompletionsRuntime("http://127.0.0.1:9/v1", "x")
    with pytest.raises(AgentUnavailable, match=re.escape("cannot reach http://127.0.0.1:9/v1")):
        await unreachable.run(request(), Reported().io)


async def test_a_session_through_the_http_runtime(agents: Agents, chat_url: str) -> None:
    agents.runtimes["http"] = ChatCompletionsRuntime(chat_url, "triage-json")
    async with agents.running() as client:
        handle = await client.start(
            "tests/agents-parent.run", ParentInput(runtime="http", prompt="triage A")
        )
        out: ParentOutput = await handle.result()
        record = await agents.sessions.get(out.session_id, org_id="")
    assert out.status == "completed"
    assert json.loads(out.summary) == {"labels": ["bug"], "priority": 1}
    assert record is not None and record.result["usage"]["total_tokens"] == 49
    assert [p.line for p in record.progress] == [
        "asking triage-json",
        "answered by triage-json-0613 (49 tokens)",
    ]
