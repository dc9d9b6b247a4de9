"""The remote backend: an OpenAI-compatible server (FastChat's openai_api_server, vLLM,
llama.cpp's server, TGI, Ollama's /v1).

Chat completions are streamed (server-sent events) with httpx.  Cancel closes the HTTP
stream at once, so the server stops generating.  The API key travels only in the
Authorization header: it is never printed, logged or stored.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from vicuna_tui.engine.events import (
    FINISH_CANCELLED,
    FINISH_LENGTH,
    FINISH_STOP,
    ChatRequest,
    EngineEvent,
    ModelInfo,
    PromptPreview,
    ReplyDelta,
    ReplyDone,
    ReplyStarted,
    ReplyStats,
)
from vicuna_tui.engine.settings import RemoteSettings
from vicuna_tui.engine.sources import Progress
from vicuna_tui.engine.textstream import LeadingSpace
from vicuna_tui.errors import RemoteError, SettingsError


class ModelChoiceError(RemoteError):
    """The server offers several models and none was named."""

    def __init__(self, endpoint: str, models: list[str]) -> None:
        super().__init__(
            f"{endpoint} serves {len(models)} models: {', '.join(models)}",
            f"pick one with --model NAME (e.g. --model {models[0]})",
        )
        self.models = models


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


class RemoteBackend:
    kind = "remote"

    def __init__(self, settings: RemoteSettings) -> None:
        self.settings = settings
        self.endpoint = settings.endpoint.rstrip("/")
        self.public = public_url(self.endpoint)
        self.model: str | None = settings.model
        self.models: list[str] = []
        self._client: Any = None
        self._response: Any = None
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._info: ModelInfo | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def check(self) -> None:
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(
                f"--endpoint {self.public!r} is not an http(s) URL",
                "use e.g. http://gpu-box:8000/v1",
            )

    def _headers(self) -> dict[str, str]:
        key = self.settings.key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _timeout(self) -> Any:
        import httpx

        # Connecting should be quick; the first token of a long prompt on a busy server
        # may not be, so reads wait request_timeout seconds (10 minutes by default).
        return httpx.Timeout(
            connect=15.0, read=self.settings.request_timeout, write=60.0, pool=15.0
        )

    def _ensure_client(self) -> Any:
        import httpx

        if self._client is None:
            self._client = httpx.Client(
                timeout=self._timeout(), verify=self.settings.verify_tls, follow_redirects=True
            )
        return self._client

    def _translate(self, exc: Exception, doing: str) -> RemoteError:
        import httpx

        text = str(exc)
        if isinstance(exc, httpx.ConnectTimeout):
            return RemoteError(
                f"{self.public} did not accept a connection while {doing}",
                "check the address and that the server is up",
            )
        if isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout)):
            return RemoteError(
                f"{self.public} did not answer within {self.settings.request_timeout:g} s "
                f"while {doing}",
                "raise --request-timeout (or request_timeout in config.toml); the first "
                "token can take long on a busy server",
            )
        if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text or "certificate" in text.lower():
            return RemoteError(
                f"the TLS certificate of {self.public} could not be verified ({text[:160]})",
                "fix the server's certificate, set SSL_CERT_FILE to your CA bundle, or pass "
                "--insecure for a server you trust",
            )
        if isinstance(exc, httpx.ConnectError):
            return RemoteError(
                f"cannot connect to {self.public} ({text[:160] or 'refused'})",
                "is the server running? check --endpoint (host, port, /v1)",
            )
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.StreamError)):
            return RemoteError(
                f"the connection to {self.public} dropped while {doing}",
                "the text received so far is kept; check the server, then regenerate",
            )
        return RemoteError(
            f"{type(exc).__name__} while {doing}: {text[:200]}", "run with --debug for details"
        )

    def _http_error(self, status: int, body: bytes) -> RemoteError:
        message = server_message(body, status)
        if status in (401, 403):
            return RemoteError(
                f"{self.public} refused the request (HTTP {status}): {message}",
                f"set the API key in ${self.settings.api_key_env} (or "
                "--api-key-env VAR, or api_key in config.toml)",
            )
        if status == 404 and self.models and self.model not in self.models:
            return RemoteError(
                f"{self.public} has no model {self.model!r} (HTTP 404)",
                "models on the server: " + ", ".join(self.models),
            )
        if status == 404:
            return RemoteError(
                f"{self.public} answered HTTP 404: {message}",
                "check --endpoint: it usually ends in /v1",
            )
        return RemoteError(
            f"{self.public} answered HTTP {status}: {message}",
            "see the server's log; the request can be retried",
        )

    def list_models(self) -> list[dict[str, Any]]:
        client = self._ensure_client()
        try:
            response = client.get(f"{self.endpoint}/models", headers=self._headers())
        except Exception as exc:
            raise self._translate(exc, "listing models") from exc
        if response.status_code >= 400:
            raise self._http_error(response.status_code, response.content)
        try:
            data = response.json().get("data", [])
        except (ValueError, AttributeError):
            raise RemoteError(
                f"{self.public}/models did not answer with a model list",
                "is this an OpenAI-compatible endpoint (ending in /v1)?",
            ) from None
        return [entry for entry in data if isinstance(entry, dict) and "id" in entry]

    def load(self, progress: Progress | None = None) -> ModelInfo:
        report = progress or (lambda stage, done, total: None)
        self.check()
        report(f"connecting to {self.public}", 0, 1)
        entries = self.list_models()
        self.models = [str(e["id"]) for e in entries]
        if self.model is None:
            if len(self.models) == 1:
                self.model = self.models[0]
            elif not self.models:
                raise RemoteError(
                    f"{self.public} serves no models yet",
                    "wait for its workers to register, then retry",
                )
            else:
                raise ModelChoiceError(self.public, self.models)
        elif self.models and self.model not in self.models:
            raise RemoteError(
                f"{self.public} has no model {self.model!r}",
                "models on the server: " + ", ".join(self.models),
            )
        entry = next((e for e in entries if e.get("id") == self.model), {})
        context = entry.get("max_model_len") or entry.get("context_length") or 0
        report(f"connecting to {self.public}", 1, 1)
        self._info = ModelInfo(
            name=self.model,
            path=self.public,
            source=f"{self.public} (OpenAI-compatible server)",
            backend="remote",
            device="remote",
            dtype="server",
            context_length=int(context) if isinstance(context, int) else 0,
            template="server",
            endpoint=self.public,
            models=tuple(self.models),
        )

        return self._info

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            raise RemoteError("not connected", "wait for the connection")
        return self._info

    def cancel(self) -> None:
        """Close the stream now: the server sees the client go and stops generating."""
        self._cancelled.set()
        with self._lock:
            response = self._response
        if response is not None:
            # closing from another thread may race the reader; either way it stops
            with contextlib.suppress(Exception):
                response.close()

    def unload(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- chat ----------------------------------------------------------------------------

    def messages(self, request: ChatRequest) -> list[dict[str, str]]:
        out = []
        if request.system_message:
            out.append({"role": "system", "content": request.system_message})
        out += [{"role": role, "content": text} for role, text in request.turns]
        return out

    def body(self, request: ChatRequest, *, usage: bool = True) -> dict[str, Any]:
        gen = request.generation
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages(request),
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
        return body

    def preview(self, request: ChatRequest) -> PromptPreview:
        text = json.dumps(self.messages(request), ensure_ascii=False, indent=2)
        return PromptPreview(request.request_id, text, -1, 0)

    def generate(self, request: ChatRequest, cancel: threading.Event) -> Iterator[EngineEvent]:
        self._cancelled.clear()
        started = time.perf_counter()
        yield ReplyStarted(
            request.request_id, 0, 0, 0, request.generation.max_new_tokens, request.generation.seed
        )
        parts: list[str] = []
        first: float | None = None
        last = started
        chunks = 0
        finish = FINISH_STOP
        usage: dict[str, Any] = {}
        leading = LeadingSpace()
        ended = False  # [DONE] or a finish_reason arrived
        client = self._ensure_client()
        stream = None
        for attempt in (True, False):
            try:
                stream = client.stream(
                    "POST",
                    f"{self.endpoint}/chat/completions",
                    json=self.body(request, usage=attempt),
                    headers=self._headers(),
                )
                response = stream.__enter__()
            except Exception as exc:
                raise self._translate(exc, "sending the request") from exc
            if response.status_code < 400:
                break
            body = response.read()
            stream.__exit__(None, None, None)
            if attempt and response.status_code == 400 and b"stream_options" in body:
                continue  # an older server: ask again without usage reporting
            raise self._http_error(response.status_code, body)
        assert stream is not None
        with self._lock:
            self._response = response
        try:
            for data in sse_data(response.iter_lines()):
                if cancel.is_set():
                    finish = FINISH_CANCELLED
                    break
                if data.strip() == "[DONE]":
                    ended = True
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    continue
                if "error" in chunk:
                    error = chunk["error"]
                    message = error.get("message") if isinstance(error, dict) else str(error)
                    raise RemoteError(
                        f"{self.public} reported an error mid-reply: {message}",
                        "the text received so far is kept",
                    )
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content") or choice.get("text") or ""
                    text = leading.push(text)
                    if text:
                        now = time.perf_counter()
                        first = first or now
                        last = now
                        chunks += 1
                        parts.append(text)
                        yield ReplyDelta(request.request_id, text)
                    reason = choice.get("finish_reason")
                    if reason:
                        ended = True
                        finish = FINISH_LENGTH if reason == "length" else FINISH_STOP
        except RemoteError:
            raise
        except Exception as exc:
            if not (cancel.is_set() or self._cancelled.is_set()):
                raise self._translate(exc, "streaming the reply") from exc
            finish = FINISH_CANCELLED
        finally:
            with self._lock:
                self._response = None
            with contextlib.suppress(Exception):
                stream.__exit__(None, None, None)
        if cancel.is_set():
            finish = FINISH_CANCELLED
        elif not ended and finish != FINISH_CANCELLED:
            raise RemoteError(
                f"the connection to {self.public} dropped mid-reply",
                "the text received so far is kept; check the server, then regenerate",
            )
        new_tokens = int(usage.get("completion_tokens") or chunks)
        rate = None
        if first is not None and last > first and new_tokens > 1:
            rate = (new_tokens - 1) / (last - first)
        stats = ReplyStats(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            cached_tokens=0,
            new_tokens=new_tokens,
            time_to_first_token=(first - started) if first is not None else None,
            tokens_per_second=rate,
            total_time=time.perf_counter() - started,
            seed=request.generation.seed,
        )
        yield ReplyDone(request.request_id, "".join(parts).rstrip(), finish, stats)
