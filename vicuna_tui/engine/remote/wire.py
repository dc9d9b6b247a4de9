"""The OpenAI chat-completions wire format: request bodies, server-sent events, stream
chunks and error bodies, as FastChat, vLLM, llama.cpp's server, TGI and Ollama speak it.
Nothing here opens a connection."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from vicuna_tui.engine.events import (
    FINISH_LENGTH,
    FINISH_STOP,
    ChatRequest,
    ReplyStats,
    TokenLogprob,
)


def public_url(url: str) -> str:
    """The URL without any user:password part, fit for display and storage."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts).rstrip("/")


def sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The data payloads of a server-sent event stream (multi-line data joined)."""
    buffer: list[str] = []
    for line in lines:
        if line == "":
            if buffer:
                yield "\n".join(buffer)
                buffer = []
            continue
        if line.startswith(":"):
            continue  # a comment / keep-alive
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            buffer.append(value)
    if buffer:
        yield "\n".join(buffer)


def server_message(body: bytes | str, status: int) -> str:
    """The error text a server put in its response body (OpenAI, FastChat, vLLM styles)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:500] or f"HTTP {status}"
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            for key in ("message", "detail", "msg"):
                value = error.get(key)
                if isinstance(value, str):
                    return value
        if isinstance(error, str):
            return error
        for key in ("detail", "message"):
            value = data.get(key)
            if isinstance(value, str):
                return value
    return text.strip()[:500]


def chat_messages(request: ChatRequest) -> list[dict[str, str]]:
    out = []
    if request.system_message:
        out.append({"role": "system", "content": request.system_message})
    out += [{"role": role, "content": text} for role, text in request.turns]
    return out


def request_body(model: str | None, request: ChatRequest, *, usage: bool = True) -> dict[str, Any]:
    """A streamed chat-completions request; ``usage`` asks for token counts at the end."""
    gen = request.generation
    body: dict[str, Any] = {
        "model": model,
        "messages": chat_messages(request),
        "stream": True,
        "temperature": gen.temperature,
        "top_p": gen.top_p,
        "max_tokens": gen.max_new_tokens,
    }
    if gen.stop:
        body["stop"] = list(gen.stop)
    if gen.seed is not None:
        body["seed"] = gen.seed
    if gen.top_k:
        body["top_k"] = gen.top_k  # vLLM, FastChat and llama.cpp read it
    if gen.repetition_penalty != 1.0:
        body["repetition_penalty"] = gen.repetition_penalty
    if usage:
        body["stream_options"] = {"include_usage": True}
    if request.constraint is not None:  # a schema; RemoteBackend.generate refuses a grammar
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "reply", "schema": request.constraint.schema, "strict": True},
        }
    if request.logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = request.logprobs
    return body


@dataclass(frozen=True)
class Chunk:
    """One event of a streamed reply."""

    texts: list[str] = field(default_factory=list)
    finish_reason: str | None = None  # ours: stop or length
    usage: dict[str, Any] | None = None
    error: str | None = None  # the server reported an error mid-reply
    done: bool = False  # [DONE]
    logprobs: list[TokenLogprob] = field(default_factory=list)


def read_chunk(data: str) -> Chunk | None:
    """An SSE data payload as a Chunk; None for one that is not JSON (skipped)."""
    if data.strip() == "[DONE]":
        return Chunk(done=True)
    try:
        chunk = json.loads(data)
    except ValueError:
        return None
    if not isinstance(chunk, dict):
        return None
    if "error" in chunk:
        error = chunk["error"]
        return Chunk(error=str(error.get("message") if isinstance(error, dict) else error))
    texts: list[str] = []
    finish: str | None = None
    logprobs: list[TokenLogprob] = []
    for choice in chunk.get("choices") or []:
        texts.append((choice.get("delta") or {}).get("content") or choice.get("text") or "")
        reason = choice.get("finish_reason")
        if reason:
            finish = FINISH_LENGTH if reason == "length" else FINISH_STOP
        content = (choice.get("logprobs") or {}).get("content") or ()
        logprobs.extend(TokenLogprob.from_record(i) for i in content if isinstance(i, dict))
    usage = chunk.get("usage")
    return Chunk(texts, finish, usage if isinstance(usage, dict) else None, logprobs=logprobs)


@dataclass
class Tally:
    """What a streamed reply has brought so far, and its stats at the end."""

    started: float
    parts: list[str] = field(default_factory=list)
    first: float | None = None
    last: float = 0.0
    finish: str = FINISH_STOP
    usage: dict[str, Any] = field(default_factory=dict)
    ended: bool = False  # [DONE] or a finish_reason arrived
    logprobs: list[TokenLogprob] = field(default_factory=list)

    def add(self, text: str) -> None:
        now = time.perf_counter()
        self.first = self.first or now
        self.last = now
        self.parts.append(text)

    @property
    def text(self) -> str:
        return "".join(self.parts).rstrip()

    def stats(self, seed: int | None) -> ReplyStats:
        new_tokens = int(self.usage.get("completion_tokens") or len(self.parts))
        rate = None
        if self.first is not None and self.last > self.first and new_tokens > 1:
            rate = (new_tokens - 1) / (self.last - self.first)
        return ReplyStats(
            prompt_tokens=int(self.usage.get("prompt_tokens") or 0),
            cached_tokens=0,
            new_tokens=new_tokens,
            time_to_first_token=(self.first - self.started) if self.first is not None else None,
            tokens_per_second=rate,
            total_time=time.perf_counter() - self.started,
            seed=seed,
        )
