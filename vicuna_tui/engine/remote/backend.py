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
from urllib.parse import urlsplit

from vicuna_tui.engine.backend import HoldsModel
from vicuna_tui.engine.constraints import JSON_SCHEMA
from vicuna_tui.engine.events import (
    FINISH_CANCELLED,
    ChatRequest,
    EngineEvent,
    ModelInfo,
    Notice,
    PromptPreview,
    ReplyDelta,
    ReplyDone,
    ReplyStarted,
)
from vicuna_tui.engine.progress import Progress
from vicuna_tui.engine.remote.wire import (
    Tally,
    chat_messages,
    public_url,
    read_chunk,
    request_body,
    server_message,
    sse_data,
)
from vicuna_tui.engine.settings import RemoteSettings
from vicuna_tui.engine.textstream import LeadingSpace
from vicuna_tui.errors import ModelChoiceError, RemoteError, SettingsError, VicunaError


class RemoteBackend(HoldsModel):
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

        text = self._redact(str(exc))
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

    def _redact(self, text: str) -> str:
        """A server's words with our API key taken out (some echo it back)."""
        key = self.settings.key()
        return text.replace(key, "[API key]") if key and len(key) >= 4 else text

    def _http_error(self, status: int, body: bytes) -> RemoteError:
        message = self._redact(server_message(body, status))
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

    def not_loaded(self) -> VicunaError:
        return RemoteError("not connected", "wait for the connection")

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

    def preview(self, request: ChatRequest) -> PromptPreview:
        text = json.dumps(chat_messages(request), ensure_ascii=False, indent=2)
        return PromptPreview(request.request_id, text, -1, 0)

    def generate(self, request: ChatRequest, cancel: threading.Event) -> Iterator[EngineEvent]:
        self._cancelled.clear()
        if request.constraint is not None and request.constraint.kind != JSON_SCHEMA:
            raise SettingsError(
                "a GBNF grammar (--grammar) is for models run here on llama.cpp, not a server",
                "use --json-schema with a server (it is sent as response_format), or run "
                "the GGUF here",
            )
        if request.reply_prefix:
            raise SettingsError(
                "branching from a token needs the model here: a server's chat API cannot "
                "be told how its reply starts",
                "regenerate the reply (Ctrl+R), or run the model here (a GGUF or a Hugging "
                "Face model) to branch from a token",
            )
        tally = Tally(time.perf_counter())
        gen = request.generation
        yield ReplyStarted(request.request_id, 0, 0, 0, gen.max_new_tokens, gen.seed)
        stream, response = self._open_stream(request)
        with self._lock:
            self._response = response
        try:
            yield from self._read(response, request, cancel, tally)
        except RemoteError:
            raise
        except Exception as exc:
            if not (cancel.is_set() or self._cancelled.is_set()):
                raise self._translate(exc, "streaming the reply") from exc
            tally.finish = FINISH_CANCELLED
        finally:
            with self._lock:
                self._response = None
            with contextlib.suppress(Exception):
                stream.__exit__(None, None, None)
        if cancel.is_set():
            tally.finish = FINISH_CANCELLED
        elif not tally.ended and tally.finish != FINISH_CANCELLED:
            raise RemoteError(
                f"the connection to {self.public} dropped mid-reply",
                "the text received so far is kept; check the server, then regenerate",
            )
        if request.logprobs and not tally.logprobs and tally.text:
            yield Notice(
                f"{self.public} sent no token log-probabilities (logprobs): it does not "
                "support them, or not for this model"
            )
        tokens = tuple(tally.logprobs) if request.logprobs else None
        yield ReplyDone(request.request_id, tally.text, tally.finish, tally.stats(gen.seed), tokens)

    def _open_stream(self, request: ChatRequest) -> tuple[Any, Any]:
        """The streamed request and its response (asked again without usage reporting
        for an older server that refuses ``stream_options``)."""
        client = self._ensure_client()
        for attempt in (True, False):
            try:
                stream = client.stream(
                    "POST",
                    f"{self.endpoint}/chat/completions",
                    json=request_body(self.model, request, usage=attempt),
                    headers=self._headers(),
                )
                response = stream.__enter__()
            except Exception as exc:
                raise self._translate(exc, "sending the request") from exc
            if response.status_code < 400:
                return stream, response
            body = response.read()
            stream.__exit__(None, None, None)
            if not (attempt and response.status_code == 400 and b"stream_options" in body):
                raise self._http_error(response.status_code, body)
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(
        self, response: Any, request: ChatRequest, cancel: threading.Event, tally: Tally
    ) -> Iterator[ReplyDelta]:
        leading = LeadingSpace()
        for data in sse_data(response.iter_lines()):
            if cancel.is_set():
                tally.finish = FINISH_CANCELLED
                return
            chunk = read_chunk(data)
            if chunk is None:
                continue
            if chunk.done:
                tally.ended = True
                return
            if chunk.error is not None:
                raise RemoteError(
                    f"{self.public} reported an error mid-reply: {chunk.error}",
                    "the text received so far is kept",
                )
            if chunk.usage is not None:
                tally.usage = chunk.usage
            tally.logprobs.extend(chunk.logprobs)
            for piece in chunk.texts:
                text = leading.push(piece)
                if text:
                    tally.add(text)
                    yield ReplyDelta(request.request_id, text)
            if chunk.finish_reason:
                tally.ended = True
                tally.finish = chunk.finish_reason
