"""The llama.cpp backend: a ``.gguf`` model run natively, in this process, by xllamacpp.

xllamacpp wraps llama.cpp's own server engine (its slots, prompt cache and samplers)
and lets us call its completion handler directly, with a callback per streamed token.
The prompt stays ours: we render it with our templates, tokenize it with the model's
own tokenizer (special tokens parsed, BOS as the template needs), and send the token
ids, so the model sees exactly the prompt the transformers path would give it.  Our
stop strings, truncation by whole turns and statistics work as there.

Cancelling: the token callback returns True once the cancel event is set, which makes
llama.cpp drop the request after the token in flight.  A long prompt is prefilled in
chunks (each one a request that the prompt cache keeps), so a cancel during the
prefill waits for at most one chunk: 512 tokens on a GPU, 256 for a small model on a
CPU, fewer for larger ones, whose prefill is slower.  The chunk size depends only on
the model and device, so a replay chunks exactly as the original run did.

Torch and transformers are never imported here.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import queue
import secrets
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vicuna_tui.engine import gguf_file, sources, templates
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
)
from vicuna_tui.engine.loader import cpu_cores, default_threads
from vicuna_tui.engine.prompting import PreparedPrompt, common_prefix, fit_prompt, reply_stats
from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.engine.sources import Progress
from vicuna_tui.engine.textstream import LeadingSpace, StopMatcher
from vicuna_tui.errors import (
    DeviceError,
    GenerationError,
    ModelNotFoundError,
    OutOfMemoryError,
    SettingsError,
    VicunaError,
)

ENGINE = "llamacpp"
DEFAULT_CONTEXT_CAP = 4096  # a full 32k KV cache costs gigabytes; --context raises it
PREFILL_CHUNK = 512  # tokens per prefill request: the longest wait for a cancel
BATCH = 512
NEEDS_XLLAMACPP = (
    "the llama.cpp backend needs the xllamacpp package",
    "install it (`pip install xllamacpp`), or run the model with --backend transformers",
)


class LlamaCppBackend:
    """Owns one llama.cpp model.  Every method runs on the engine thread, except
    ``cancel``."""

    kind = "local"

    def __init__(
        self,
        settings: LoadSettings,
        *,
        native_log: bool = False,
        prefill_threads: int | None = None,
    ) -> None:
        self.settings = settings
        self.native_log = native_log  # let llama.cpp write its log to stderr
        # Prefill is compute-bound and gains from every core (BENCHMARKS.md); decode is
        # bound by memory and keeps a core free.
        self.prefill_threads = prefill_threads
        self._server: Any = None
        self._info: ModelInfo | None = None
        self._auto_template = "vicuna_v1.1"
        self._chat_template: templates.ChatTemplate | None = None
        self._address: tuple[str, int] = ("127.0.0.1", 0)
        self._key = ""
        self._http: http.client.HTTPConnection | None = None
        self._slot_ids: list[int] = []  # the prompt the slot last saw
        self._fresh = False  # the next request must not reuse the prompt cache
        self.ignore_eos = False  # benchmarks: replies of the full length
        self.prefill_chunk = PREFILL_CHUNK

    # -- lifecycle -----------------------------------------------------------------------

    def check(self) -> None:
        """Cheap refusals: bad settings, a path that is not a GGUF, a damaged file."""
        self._check_settings()
        path = self.settings.model_path
        if path is not None and Path(path).expanduser().exists():
            source = sources.resolve_gguf(path, self.settings.revision, self.settings.gguf_file)
            gguf_file.read(source.path)

    def _check_settings(self) -> None:
        self.settings.check()
        if self.settings.max_gpu_memory:
            raise SettingsError(
                "--max-gpu-memory is not supported by the llama.cpp backend",
                "limit the GPU's share with --gpu-layers N, or use --backend transformers",
            )
        if self.settings.device == "mps" and sys.platform != "darwin":
            raise DeviceError("--device mps needs a Mac", "use --device cpu or --device auto")

    def load(self, progress: Progress | None = None) -> ModelInfo:
        report = progress or (lambda stage, done, total: None)
        self._check_settings()  # the file itself is read (and checked) once, below
        try:
            import xllamacpp
        except ImportError:
            raise GenerationError(*NEEDS_XLLAMACPP) from None
        settings = self.settings
        source = sources.resolve_gguf(
            settings.model_path, settings.revision, settings.gguf_file, report
        )
        info = gguf_file.read(source.path)
        report("loading with llama.cpp", 0, 1)
        notices = self._notices(info)
        gpu_layers, device = self._placement(xllamacpp, info)
        trained = info.context_length or 2048
        context = settings.context or min(trained, DEFAULT_CONTEXT_CAP)
        if settings.context and settings.context > trained:
            notices.append(
                f"--context {settings.context} is more than the {trained} tokens this model "
                "was trained on: replies past that point may degrade"
            )
        _check_memory(info, context, gpu_layers)
        self.prefill_chunk = prefill_chunk(info, gpu_layers)
        threads = settings.threads or default_threads()

        params = xllamacpp.CommonParams()
        params.model.path = str(source.path)
        params.n_ctx = context
        params.n_parallel = 1
        params.n_batch = BATCH
        params.n_ubatch = BATCH
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = self.prefill_threads or max(threads, cpu_cores())
        params.n_gpu_layers = gpu_layers
        params.cache_prompt = True
        params.verbosity = 3 if self.native_log else -1
        params.warmup = False
        self._key = secrets.token_urlsafe(24)  # the library's HTTP port is ours alone
        params.api_keys = [self._key]
        if gpu_layers == 0:
            params.no_kv_offload = True
            params.no_op_offload = True
        if settings.num_gpus == 1:
            params.split_mode = xllamacpp.llama_split_mode.LLAMA_SPLIT_MODE_NONE
        saved = _SignalHandlers()
        try:
            self._server = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise _load_error(source.path, info) from exc
        finally:
            saved.restore()  # llama.cpp installs its own SIGINT/SIGTERM handlers
        address = urllib.parse.urlparse(self._server.listening_address)
        self._address = (address.hostname or "127.0.0.1", address.port or 0)
        self._chat_template = None
        if info.chat_template:
            self._chat_template = templates.ChatTemplate(
                info.chat_template,
                bos_token=info.token("bos") or "",
                eos_token=info.token("eos") or "",
            )
        name = source.hub_id or settings.model_path or source.name
        template, notice = templates.choose_template_name(
            str(name),
            self._chat_template is not None,
            len(info.tokens) or None,
            info.architecture == "llama",
        )
        self._auto_template = template
        if notice:
            notices.append(notice)
        report("loading with llama.cpp", 1, 1)
        self._info = ModelInfo(
            name=source.name,
            path=str(source.path),
            source=source.description,
            device=device,
            dtype="gguf",
            quantization=info.file_type,
            context_length=context,
            template=template,
            notices=tuple(notices),
            parameters=0,
            revision=settings.revision,
            devices=("cpu",) if device == "cpu" else (device, "cpu"),
            engine=ENGINE,
            threads=threads,
            gpu_layers=gpu_layers,
        )
        self._slot_ids = []
        return self._info

    def _notices(self, info: gguf_file.GGUFInfo) -> list[str]:
        settings = self.settings
        notes: list[str] = []
        quant = info.file_type or "its own"
        if settings.quantization:
            notes.append(
                f"--load-{settings.quantization} does not apply to a GGUF: the file's own "
                f"quantization ({quant}) is used"
            )
        if settings.dtype != "auto":
            notes.append(f"--dtype {settings.dtype} does not apply to a GGUF ({quant} weights)")
        if settings.compile:
            notes.append("--compile is for the transformers backend; llama.cpp ignores it")
        if settings.cpu_offloading:
            notes.append("--cpu-offloading: with llama.cpp, --gpu-layers N sets what runs where")
        return notes

    def _placement(self, xllamacpp: Any, info: gguf_file.GGUFInfo) -> tuple[int, str]:
        """(layers on the GPU, device label) for the settings and this llama.cpp build."""
        settings = self.settings
        if settings.device == "cpu":
            if settings.gpu_layers:
                raise SettingsError(
                    "--gpu-layers needs a GPU, and --device cpu was asked for",
                    "drop --device cpu, or --gpu-layers",
                )
            return 0, "cpu"
        kinds = xllamacpp.ggml_backend_dev_type
        wanted = (kinds.GGML_BACKEND_DEVICE_TYPE_GPU, kinds.GGML_BACKEND_DEVICE_TYPE_IGPU)
        gpus = [d for d in _devices(xllamacpp) if d.get("type") in wanted]
        if not gpus:
            if settings.device in ("cuda", "mps") or settings.gpu_layers:
                flag = (
                    f"--device {settings.device}"
                    if settings.device != "auto"
                    else f"--gpu-layers {settings.gpu_layers}"
                )
                raise DeviceError(
                    f"{flag} was asked for but is not available here: this llama.cpp build "
                    "(xllamacpp) sees no GPU",
                    "install xllamacpp's CUDA or Metal build (see its README), "
                    "or run on the CPU (--device cpu)",
                )
            return 0, "cpu"
        if settings.num_gpus > len(gpus):
            raise DeviceError(
                f"--num-gpus {settings.num_gpus} was asked for; llama.cpp sees {len(gpus)}",
                f"use --num-gpus {len(gpus)} or fewer",
            )
        blocks = (info.block_count or 0) + 1  # the output layer counts as one
        layers = blocks if settings.gpu_layers is None else min(settings.gpu_layers, blocks)
        name = str(gpus[0].get("name") or "gpu").lower()
        return layers, name if layers else "cpu"

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            raise GenerationError("no model is loaded", "wait for the model to load")
        return self._info

    def cancel(self) -> None:
        """Nothing to close: the token callback sees the cancel event."""

    def memory_in_use(self) -> int | None:
        return None

    def reset_cache(self) -> None:
        self._slot_ids = []
        self._fresh = True

    def unload(self) -> None:
        server, self._server = self._server, None
        self._info = None
        self._slot_ids = []
        if self._http is not None:
            with contextlib.suppress(OSError):
                self._http.close()
            self._http = None
        del server  # llama.cpp stops its loop and frees the model

    # -- tokens --------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        """One call to the library's own HTTP routes (tokenize), over loopback, with
        the key only this process knows."""
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
                self._http.close()
                self._http = None
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

    def tokenize(self, text: str, renderer: templates.PromptRenderer) -> list[int]:
        # As on the transformers path: named templates leave BOS to the tokenizer, chat
        # templates write their own special tokens.
        add_special = not isinstance(renderer, templates.ChatTemplate)
        result = self._post(
            "/tokenize", {"content": text, "add_special": add_special, "parse_special": True}
        )
        return [int(t) for t in result["tokens"]]

    # -- prompts -------------------------------------------------------------------------

    def renderer(self, name: str) -> templates.PromptRenderer:
        if name == templates.AUTO:
            name = self._auto_template
        if name == templates.TOKENIZER_TEMPLATE:
            if self._chat_template is None:
                raise SettingsError(
                    "this GGUF has no chat template", "choose a named template, e.g. vicuna_v1.1"
                )
            return self._chat_template
        return templates.get_template(name)

    def prepare(self, request: ChatRequest) -> PreparedPrompt:
        """Render the prompt, dropping whole oldest turns until it fits the context."""
        return fit_prompt(
            request,
            self.renderer(request.template),
            self.info.context_length,
            self.tokenize,
            "shorten the message, split it, or raise --context",
        )

    def preview(self, request: ChatRequest) -> PromptPreview:
        prepared = self.prepare(request)
        return PromptPreview(
            request.request_id, prepared.text, len(prepared.ids), prepared.dropped_turns
        )

    # -- generation ----------------------------------------------------------------------

    def sampling(self, request: ChatRequest, seed: int | None) -> dict[str, Any]:
        """llama.cpp's sampler settings meaning what ours mean: only the samplers we
        name, with the effect of transformers' order (penalty, temperature, top-k,
        top-p)."""
        gen = request.generation
        body: dict[str, Any] = {
            "temperature": gen.temperature,
            "top_k": gen.top_k,
            "top_p": gen.top_p,
            "min_p": 0.0,
            "typical_p": 1.0,
            "repeat_penalty": gen.repetition_penalty,
            "repeat_last_n": self.info.context_length,  # the whole history, as transformers
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "dry_multiplier": 0.0,
            "xtc_probability": 0.0,
            "mirostat": 0,
            # top-k does not change under a temperature, so it may come first (and
            # makes the rest cheap); top-p comes after the temperature, as in transformers.
            "samplers": ["penalties", "top_k", "temperature", "top_p"],
            "ignore_eos": self.ignore_eos,
        }
        if gen.greedy:  # the argmax: one pass over the vocabulary (6% faster decode here)
            body.update(top_k=1, samplers=["penalties", "top_k"])
        if seed is not None:
            body["seed"] = seed % 2**32
        return body

    def generate(self, request: ChatRequest, cancel: threading.Event) -> Iterator[EngineEvent]:
        started = time.perf_counter()
        if self._server is None:
            raise GenerationError("no model is loaded", "wait for the model to load")
        prepared = self.prepare(request)
        gen = request.generation
        seed = gen.seed if gen.seed is not None else (None if gen.greedy else secrets.randbits(31))
        fresh, self._fresh = self._fresh, False
        predicted = 0 if fresh else common_prefix(self._slot_ids, prepared.ids)
        predicted = min(predicted, len(prepared.ids) - 1)
        yield ReplyStarted(
            request.request_id,
            len(prepared.ids),
            predicted,
            prepared.dropped_turns,
            prepared.max_new_tokens,
            seed,
        )
        sampling = self.sampling(request, seed)
        cached_first = self._prefill(prepared.ids, predicted, fresh, sampling, cancel)
        matcher = StopMatcher([*prepared.renderer.stop_strings, *gen.stop])
        leading = LeadingSpace()
        parts: list[str] = []
        first: float | None = None
        last = started
        count = 0
        finish = FINISH_LENGTH
        final: dict[str, Any] = {}
        body = {
            "prompt": prepared.ids,
            "max_tokens": prepared.max_new_tokens,
            "stream": True,
            "cache_prompt": not (fresh and cached_first is None),
            **sampling,
        }
        stream = None if cancel.is_set() else _Stream(self._server, body, cancel)
        try:
            if stream is None:
                finish = FINISH_CANCELLED
            else:
                for chunk in stream:
                    if "error" in chunk:
                        raise _generation_error(chunk)
                    choice = (chunk.get("choices") or [{}])[0]
                    text = choice.get("text") or ""
                    if chunk.get("usage"):
                        final = chunk
                    if choice.get("finish_reason") is None or text:
                        count += 1
                        last = time.perf_counter()
                        if first is None:
                            first = last
                    if cancel.is_set():
                        finish = FINISH_CANCELLED
                        break
                    delta = leading.push(matcher.push(text))
                    if delta:
                        parts.append(delta)
                        yield ReplyDelta(request.request_id, delta)
                    if matcher.stopped:
                        finish = FINISH_STOP
                        break
                    reason = choice.get("finish_reason")
                    if reason is not None:
                        finish = FINISH_STOP if reason == "stop" else FINISH_LENGTH
                        break
                else:
                    if cancel.is_set():
                        finish = FINISH_CANCELLED
        finally:
            if stream is not None:
                stream.close()
        if finish != FINISH_STOP:
            tail = leading.push(matcher.flush())
            if tail:
                parts.append(tail)
                yield ReplyDelta(request.request_id, tail)
        self._slot_ids = list(prepared.ids)
        usage = final.get("usage") or {}
        timings = final.get("timings") or {}
        cached = timings.get("cache_n") if cached_first is None else cached_first
        if not isinstance(cached, int):
            cached = predicted
        if isinstance(usage.get("completion_tokens"), int) and finish != FINISH_CANCELLED:
            count = int(usage["completion_tokens"])
        stats = reply_stats(
            prepared,
            cached=int(cached),
            count=count,
            started=started,
            first=first,
            last=last,
            end=time.perf_counter(),
            seed=seed,
        )
        yield ReplyDone(request.request_id, "".join(parts).rstrip(), finish, stats)

    def _prefill(
        self,
        ids: list[int],
        cached: int,
        fresh: bool,
        sampling: dict[str, Any],
        cancel: threading.Event,
    ) -> int | None:
        """Prefill a long prompt ``self.prefill_chunk`` tokens at a time, so that a cancel
        waits for one chunk, not the whole prompt.  Returns the tokens the first chunk
        found cached, or None when there was nothing to chunk."""
        found: int | None = None
        end = cached + self.prefill_chunk
        while end < len(ids) - 1 and not cancel.is_set():
            result = self._server.handle_completions(
                {
                    "prompt": ids[:end],
                    "max_tokens": 1,
                    "stream": False,
                    "cache_prompt": not (fresh and found is None),
                    **sampling,
                }
            )
            if "error" in result or "code" in result:
                raise _generation_error(result)
            if found is None:
                found = int((result.get("timings") or {}).get("cache_n") or 0)
            end += self.prefill_chunk
        return found


class _Stream:
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


def prefill_chunk(info: gguf_file.GGUFInfo, gpu_layers: int) -> int:
    """Tokens per prefill request: about a second or two of CPU prefill on a laptop
    (a 7B Q4 model prefills some 20-40 tokens/s on a few cores)."""
    if gpu_layers:
        return PREFILL_CHUNK
    if info.tensor_bytes < 2**30:
        return 256  # about 1.3 s here for SmolLM2; 6-8% less prefill than unchunked
    return 128 if info.tensor_bytes < 4 * 2**30 else 64


def _devices(xllamacpp: Any) -> list[dict[str, Any]]:
    try:
        return list(xllamacpp.get_device_info())
    except Exception:  # noqa: BLE001 - a build without device queries: no GPU to offer
        return []


def _check_memory(info: gguf_file.GGUFInfo, context: int, gpu_layers: int) -> None:
    """Refuse a model that cannot fit in the memory this machine has free."""
    import psutil

    meta, arch = info.metadata, info.architecture
    blocks = info.block_count or 0
    heads = meta.get(f"{arch}.attention.head_count") or 1
    kv_heads = meta.get(f"{arch}.attention.head_count_kv") or heads
    width = meta.get(f"{arch}.embedding_length") or 0
    head_dim = meta.get(f"{arch}.attention.key_length") or (width // max(1, int(heads)))
    kv_bytes = context * blocks * int(kv_heads) * int(head_dim) * 2 * 2  # K and V, f16
    on_cpu = 1.0 - min(1.0, gpu_layers / max(1, blocks + 1))
    need = int((info.tensor_bytes + kv_bytes) * on_cpu)
    free = psutil.virtual_memory().available
    if need > free:
        raise OutOfMemoryError(
            f"{info.path.name} needs about {need / 2**30:.1f} GiB of memory "
            f"({info.tensor_bytes / 2**30:.1f} GiB of weights, {kv_bytes / 2**30:.1f} GiB for "
            f"a {context}-token context); {free / 2**30:.1f} GiB is free",
            "pick a smaller quantization (e.g. Q4_K_M), a smaller --context, "
            "or put layers on a GPU with --gpu-layers",
        )


def _load_error(path: Path, info: gguf_file.GGUFInfo) -> VicunaError:
    known = gguf_file.known_architectures()
    if known is not None and not known(info.architecture):
        return ModelNotFoundError(
            f"{path} is a {info.architecture!r} model, an architecture this llama.cpp "
            "does not know",
            "update xllamacpp (`pip install -U xllamacpp`), or use --backend transformers",
        )
    return ModelNotFoundError(
        f"llama.cpp could not load {path}",
        "run with --debug to see llama.cpp's reasons (or read engine.log in the TUI); "
        "the file may be damaged or made for a newer llama.cpp",
    )


def _generation_error(chunk: dict[str, Any]) -> VicunaError:
    inner = chunk.get("error")
    error: dict[str, Any] = inner if isinstance(inner, dict) else chunk
    message = str(error.get("message") or error)
    return GenerationError(f"llama.cpp refused the request: {message}", "run with --debug")


class _SignalHandlers:
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
