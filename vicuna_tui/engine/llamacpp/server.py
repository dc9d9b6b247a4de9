"""Talking to llama.cpp in this process: xllamacpp's completion handler as an iterator,
its own HTTP routes over loopback (the tokenizer), its errors, and the signal handlers
it replaces."""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import queue
import signal
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vicuna_tui.engine.drafting import DraftTally
from vicuna_tui.engine.events import (
    FINISH_CANCELLED,
    FINISH_LENGTH,
    FINISH_STOP,
    ReplyDelta,
    ReplyStats,
    TokenLogprob,
)
from vicuna_tui.engine.prompting import PreparedPrompt, ReplyTally
from vicuna_tui.engine.settings import GenerationSettings
from vicuna_tui.errors import GenerationError, VicunaError


class LoopbackRoutes:
    """The library's own HTTP routes (tokenize), over loopback, with a key only this
    process knows; one connection, opened again once if it drops."""

    def __init__(self, listening_address: str, key: str) -> None:
        address = urllib.parse.urlparse(listening_address)
        self._address = (address.hostname or "127.0.0.1", address.port or 0)
        self._key = key
        self._http: http.client.HTTPConnection | None = None

    def post(self, path: str, body: dict[str, Any]) -> Any:
        payload = json.dumps(body)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self._key}"}
        for attempt in range(2):
            if self._http is None:
                self._http = http.client.HTTPConnection(*self._address, timeout=60)
            try:
                self._http.request("POST", path, payload, headers)
                response = self._http.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise GenerationError(
                        "llama.cpp's tokenizer did not answer", "load the model again"
                    ) from None
                continue
            if response.status != 200:
                raise GenerationError(
                    f"llama.cpp refused {path} ({response.status})", "load the model again"
                )
            return json.loads(data)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self._http is not None:
            with contextlib.suppress(OSError):
                self._http.close()
            self._http = None


class CompletionStream:
    """llama.cpp's streamed completion as an iterator: the library calls back on a
    thread of ours, once per token; returning True from the callback drops the request."""

    _DONE = object()

    def __init__(self, server: Any, body: dict[str, Any], cancel: threading.Event) -> None:
        self._items: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        self._cancel = cancel
        self._thread = threading.Thread(
            target=self._run, args=(server, body), name="vicuna-llamacpp", daemon=True
        )
        self._thread.start()

    def _callback(self, chunk: Any) -> bool:
        self._items.put(chunk)
        return self._stop.is_set() or self._cancel.is_set()

    def _run(self, server: Any, body: dict[str, Any]) -> None:
        try:
            server.handle_completions(body, self._callback)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
            self._items.put(exc)
        finally:
            self._items.put(self._DONE)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            item = self._items.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise GenerationError(
                    f"llama.cpp failed: {type(item).__name__}: {item}",
                    "run with --debug for details",
                ) from item
            yield item  # a dict: xllamacpp parses each chunk for a dict request

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class SignalHandlers:
    """The process's SIGINT and SIGTERM handlers, as the C library holds them: put back
    after llama.cpp replaces them (its handler would shut the model down on Ctrl-C)."""

    def __init__(self) -> None:
        self._saved: list[tuple[int, Any]] = []
        if os.name != "posix":
            return
        try:
            self._libc: Any = ctypes.CDLL(None, use_errno=True)
            sigaction = self._libc.sigaction
        except (OSError, AttributeError):
            return
        for number in (signal.SIGINT, signal.SIGTERM):
            buffer = ctypes.create_string_buffer(1024)  # larger than any struct sigaction
            if sigaction(int(number), None, buffer) == 0:
                self._saved.append((int(number), buffer))

    def restore(self) -> None:
        for number, buffer in self._saved:
            self._libc.sigaction(number, buffer, None)


def generation_error(chunk: dict[str, Any]) -> VicunaError:
    inner = chunk.get("error")
    error: dict[str, Any] = inner if isinstance(inner, dict) else chunk
    message = str(error.get("message") or error)
    return GenerationError(f"llama.cpp refused the request: {message}", "run with --debug")


BATCH = 512


def server_params(
    xllamacpp: Any,
    path: Path,
    *,
    context: int,
    threads: int,
    prefill_threads: int,
    gpu_layers: int,
    one_gpu: bool,
    native_log: bool,
    key: str,
    slots: int = 1,
    kv_type: str = "f16",
    prompt_cache_mib: int = 0,
) -> Any:
    """llama.cpp's parameters for one chat: ``slots`` slots, each with its prompt cache
    and room for the whole context (one KV pool of ``slots`` contexts), never cleared
    while idle: the branch shown and the one left before it.  Prompts set aside go to
    a host cache of ``prompt_cache_mib`` MiB (0: none)."""
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.n_ctx = context
    params.n_parallel = slots
    if slots > 1:
        params.kv_unified = True
        params.kv_unified_per_slot = context
        params.cache_idle_slots = False
    params.n_batch = BATCH
    params.n_ubatch = BATCH
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = prefill_threads
    params.n_gpu_layers = gpu_layers
    params.cache_prompt = True
    # We send token ids, rendered by our own sandboxed templates: llama.cpp must never
    # evaluate the file's chat template (a hostile one loops at load, beyond our reach).
    params.chat_template = "chatml"
    params.cache_ram_mib = prompt_cache_mib
    if prompt_cache_mib == 0:
        params.cache_idle_slots = False
    if kv_type != "f16":
        kind = getattr(xllamacpp.ggml_type, f"GGML_TYPE_{kv_type.upper()}")
        params.cache_type_k = kind
        params.cache_type_v = kind
        # a quantized V cache needs flash attention in llama.cpp
        params.flash_attn_type = xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_ENABLED
    params.verbosity = 3 if native_log else -1
    params.warmup = False
    params.api_keys = [key]
    # Its HTTP listener serves our tokenizer calls alone: no web page, no slot listing,
    # no cross-origin reads for a browser page (llama.cpp keeps /health open, key or not).
    params.ui = False
    params.endpoint_slots = False
    params.cors_origins = "http://127.0.0.1"
    params.n_threads_http = 1
    if gpu_layers == 0:
        params.no_kv_offload = True
        params.no_op_offload = True
    if one_gpu:
        params.split_mode = xllamacpp.llama_split_mode.LLAMA_SPLIT_MODE_NONE
    return params


def sampling_body(
    gen: GenerationSettings, seed: int | None, context_length: int, ignore_eos: bool
) -> dict[str, Any]:
    """llama.cpp's sampler settings meaning what ours mean: only the samplers we
    name, with the effect of transformers' order (penalty, temperature, top-k,
    top-p)."""
    body: dict[str, Any] = {
        "temperature": gen.temperature,
        "top_k": gen.top_k,
        "top_p": gen.top_p,
        "min_p": 0.0,
        "typical_p": 1.0,
        "repeat_penalty": gen.repetition_penalty,
        "repeat_last_n": context_length,  # the whole history, as transformers
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "dry_multiplier": 0.0,
        "xtc_probability": 0.0,
        "mirostat": 0,
        # top-k does not change under a temperature, so it may come first (and
        # makes the rest cheap); top-p comes after the temperature, as in transformers.
        "samplers": ["penalties", "top_k", "temperature", "top_p"],
        "ignore_eos": ignore_eos,
    }
    if gen.greedy:  # the argmax: one pass over the vocabulary (6% faster decode here)
        body.update(top_k=1, samplers=["penalties", "top_k"])
    if seed is not None:
        body["seed"] = seed % 2**32
    return body


@dataclass
class Reply(ReplyTally):
    """A reply as llama.cpp streams it, with the chunk that carried its usage."""

    final: dict[str, Any] = field(default_factory=dict)  # the chunk with usage and timings
    logprobs: list[TokenLogprob] = field(default_factory=list)  # when the request asked
    ids: list[int] = field(default_factory=list)  # the tokens' ids, known with logprobs
    drafts: DraftTally = field(default_factory=DraftTally)  # while speculating

    def note(self, chunk: dict[str, Any], choice: dict[str, Any]) -> None:
        """What a streamed chunk says besides its text: its token's log-probabilities,
        the reply's usage (the last chunk), the drafted counts so far (speculating)."""
        for item in (choice.get("logprobs") or {}).get("content") or ():
            self.logprobs.append(TokenLogprob.from_record(item))
            if isinstance(item.get("id"), int):
                self.ids.append(item["id"])
        if chunk.get("usage"):
            self.final = chunk
        timings = chunk.get("timings") or {}
        drafted, accepted = timings.get("draft_n"), timings.get("draft_n_accepted")
        if isinstance(drafted, int) and isinstance(accepted, int):
            self.drafts.counts(drafted, accepted)

    def llama_stats(
        self, prepared: PreparedPrompt, cached_first: int | None, predicted: int, seed: int | None
    ) -> ReplyStats:
        """The reply's stats, with llama.cpp's own counts where it gave them."""
        usage = self.final.get("usage") or {}
        timings = self.final.get("timings") or {}
        cached = timings.get("cache_n") if cached_first is None else cached_first
        if not isinstance(cached, int):
            cached = predicted
        if isinstance(usage.get("completion_tokens"), int) and self.finish != FINISH_CANCELLED:
            self.count = int(usage["completion_tokens"])
        stats = self.stats(prepared, int(cached), seed)
        drafted, accepted = timings.get("draft_n"), timings.get("draft_n_accepted")
        if isinstance(drafted, int) and isinstance(accepted, int):  # it speculated
            self.drafts.counts(drafted, accepted)
            stats = self.drafts.into(stats)
        return stats


def read_reply(
    stream: CompletionStream, request_id: int, cancel: threading.Event, reply: Reply
) -> Iterator[ReplyDelta]:
    """The reply's text from llama.cpp's chunks, up to a stop string, a cancel or the
    end (``reply.finish`` says which)."""
    for chunk in stream:
        if "error" in chunk:
            raise generation_error(chunk)
        choice = (chunk.get("choices") or [{}])[0]
        text = choice.get("text") or ""
        reply.note(chunk, choice)
        if choice.get("finish_reason") is None or text:
            reply.tick()
            reply.drafts.token(text)
        if cancel.is_set():
            reply.finish = FINISH_CANCELLED
            return
        delta = reply.push(text)
        if delta:
            yield ReplyDelta(request_id, delta, *reply.drafts.live())
        if reply.matcher.stopped:
            reply.finish = FINISH_STOP
            return
        reason = choice.get("finish_reason")
        if reason is not None:
            reply.finish = FINISH_STOP if reason == "stop" else FINISH_LENGTH
            return
    if cancel.is_set():
        reply.finish = FINISH_CANCELLED
