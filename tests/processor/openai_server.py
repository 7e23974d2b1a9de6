"""A small OpenAI-compatible HTTP server for tests: chat completions with ``usage``.

Without ``tools`` in the request it answers :data:`REPLY`. With ``tools``, it calls the first
tool when the last message is the user's (``arguments`` from :data:`TOOL_ARGUMENTS`, call id
``call_<number of messages>``), and answers from the tool's result when the last message is a
tool result (``"The tool said: <result>"``), so a client can run a real tool-calling loop."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROMPT_TOKENS = 11
COMPLETION_TOKENS = 7
REPLY = "Hello from the test server."
TOOL_ARGUMENTS = {"city": "Paris"}


def _answer(request: dict) -> tuple[dict, str]:
    """(assistant message, finish reason) for a chat request."""
    messages = request.get("messages") or []
    last = messages[-1] if messages else {}
    tools = request.get("tools") or []
    if tools and last.get("role") == "user":
        name = tools[0].get("function", {}).get("name", "tool")
        call = {"id": f"call_{len(messages)}", "type": "function",
                "function": {"name": name, "arguments": json.dumps(TOOL_ARGUMENTS)}}
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    if tools and last.get("role") == "tool":
        return {"role": "assistant", "content": f"The tool said: {last.get('content')}"}, "stop"
    return {"role": "assistant", "content": REPLY}, "stop"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("content-length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        if not self.path.endswith("/chat/completions"):
            self.send_error(404)
            return
        message, finish_reason = _answer(request)
        body = json.dumps(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": request.get("model", "test-model"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
                "usage": {
                    "prompt_tokens": PROMPT_TOKENS,
                    "completion_tokens": COMPLETION_TOKENS,
                    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                },
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass


class OpenAICompatibleServer:
    """Serves on 127.0.0.1, a free port; ``base_url`` is what the openai client takes."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def __enter__(self) -> OpenAICompatibleServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
