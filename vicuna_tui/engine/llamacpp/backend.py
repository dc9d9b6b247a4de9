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

import dataclasses
import math
import secrets
import sys
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from vicuna_tui.engine import gguf_file, sources, templates
from vicuna_tui.engine.backend import HoldsModel
from vicuna_tui.engine.constraints import JSON_SCHEMA
from vicuna_tui.engine.drafting import (
    AutoSwitch,
    Baseline,
    described,
    draft_not_found,
    speculation_state,
)
from vicuna_tui.engine.events import (
    FINISH_CANCELLED,
    FINISH_STOP,
    ChatRequest,
    EngineEvent,
    ModelInfo,
    Notice,
    PrefillProgress,
    PromptPreview,
    ReplyDelta,
    ReplyDone,
    ReplyStarted,
    ReplyStats,
)
from vicuna_tui.engine.llamacpp.fit import (
    PREFILL_CHUNK,
    branch_slots,
    check_memory,
    context_size,
    kv_cache_bytes,
    load_error,
    model_bytes,
    notices,
    placement,
    prefill_chunk,
    prompt_cache_mib,
)
from vicuna_tui.engine.llamacpp.prompt_cache import HostPromptCache
from vicuna_tui.engine.llamacpp.server import (
    CompletionStream,
    LoopbackRoutes,
    Reply,
    SignalHandlers,
    generation_error,
    read_reply,
    sampling_body,
    server_params,
)
from vicuna_tui.engine.llamacpp.speculation import (
    check_gguf_vocabulary,
    configure,
)
from vicuna_tui.engine.progress import Progress
from vicuna_tui.engine.prompting import (
    PreparedPrompt,
    common_prefix,
    fit_prompt,
    given_start,
    nothing_said,
    switch_cache,
)
from vicuna_tui.engine.settings import LoadSettings
from vicuna_tui.engine.textstream import StopMatcher
from vicuna_tui.engine.threads import ThreadPlanner, sleeping_waits_pay, use_sleeping_waits
from vicuna_tui.errors import (
    DeviceError,
    GenerationError,
    ModelNotFoundError,
    SettingsError,
    VicunaError,
)

ENGINE = "llamacpp"
NEEDS_XLLAMACPP = (
    "the llama.cpp backend needs the xllamacpp package",
    "install it (`pip install xllamacpp`), or run the model with --backend transformers",
)


class LlamaCppBackend(HoldsModel):
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
        self.prefill_threads = prefill_threads  # default: as many as decode (threads.py)
        self._server: Any = None
        self._params: Any = None  # llama.cpp's parameters, kept to rebuild the context
        self._gguf: gguf_file.GGUFInfo | None = None  # the file's facts, read at load
        self._planner: ThreadPlanner | None = None
        self._info: ModelInfo | None = None
        self._auto_template = "vicuna_v1.1"
        self._chat_template: templates.ChatTemplate | None = None
        self._key = ""
        self._routes: LoopbackRoutes | None = None
        # The prompt each slot last saw, and when it was last used (KV caches kept per
        # branch: fit.branch_slots).
        self._slots: list[list[int]] = [[]]
        # What each slot holds for llama.cpp (prompt, then the reply as -1s), and the
        # prompts it set aside in RAM (prompt_cache.py).
        self._held: list[list[int]] = [[]]
        self._host_cache = HostPromptCache(0, 0)
        self._used: list[int] = [0]
        self._turn = 0
        self._fresh = False  # the next request must not reuse the prompt cache
        self.ignore_eos = False  # benchmarks: replies of the full length
        self.prefill_chunk = PREFILL_CHUNK
        # Speculative decoding: what drafts now (off, ngram, draft), the draft model,
        # auto's decision, and the switch to make before the next reply.
        self._spec_kind = "off"
        self._draft: Path | None = None
        self._auto: AutoSwitch | None = None
        self._baseline = Baseline()  # the rate to measure speculation against
        self._spec_next: bool | None = None

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
        settings = self.settings
        source = sources.resolve_gguf(
            settings.model_path, settings.revision, settings.gguf_file, report
        )
        info = gguf_file.read(source.path)
        # Before llama.cpp's OpenMP runtime loads: it reads its wait policy once.
        sleeping = sleeping_waits_pay(info.tensor_bytes, info.block_count) and use_sleeping_waits()
        try:
            import xllamacpp
        except ImportError:
            raise GenerationError(*NEEDS_XLLAMACPP) from None
        report("loading with llama.cpp", 0, 1)
        notes = notices(settings, info)
        context = context_size(settings, info, notes)
        gpu_layers, device = placement(settings, xllamacpp, info, context, notes)
        cache_mib = prompt_cache_mib(
            info, context, settings.kv_type, gpu_layers, settings.prompt_cache_mib
        )
        kind, draft = self._speculation(info, report)
        extra = model_bytes(draft, context, settings.kv_type, gpu_layers) if draft else 0
        check_memory(info, context, gpu_layers, settings.kv_type, cache_mib, extra=extra)
        slots = branch_slots(info, context, gpu_layers, settings.kv_type)
        self.prefill_chunk = prefill_chunk(info, gpu_layers)
        if self._planner is not None:
            self._planner.close()
        self._planner = ThreadPlanner(settings.threads, adaptive=not sleeping and not gpu_layers)
        threads = self._planner.current.threads

        self._key = secrets.token_urlsafe(24)  # the library's HTTP port is ours alone
        params = server_params(
            xllamacpp,
            source.path,
            context=context,
            threads=threads,
            prefill_threads=self.prefill_threads or threads,
            gpu_layers=gpu_layers,
            one_gpu=settings.num_gpus == 1,
            native_log=self.native_log,
            key=self._key,
            slots=slots,
            kv_type=settings.kv_type,
            prompt_cache_mib=cache_mib,
        )
        self._draft = draft.path if draft is not None else None
        # auto: the chat's first reply is the baseline, without speculation
        self._auto = (
            AutoSwitch(kind) if settings.speculate_mode == "auto" and kind != "off" else None
        )
        self._spec_next = None
        self._spec_kind = "off" if self._auto is not None else kind
        self._baseline = Baseline()
        configure(
            params, xllamacpp, self._spec_kind, settings, self._draft, threads=threads,
            gpu_layers=gpu_layers,
        )  # fmt: skip
        self._start(xllamacpp, params, source.path, info)
        self._params = params
        self._check_numbers(source.path, info)
        template = self._choose_template(
            info, source.hub_id or settings.model_path or source.name, notes
        )
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
            notices=tuple(notes),
            parameters=0,
            revision=settings.revision,
            devices=("cpu",) if device == "cpu" else (device, "cpu"),
            engine=ENGINE,
            threads=threads,
            gpu_layers=gpu_layers,
            kv_type=settings.kv_type,
            prompt_cache_mib=cache_mib,
            speculation=self._speculation_text(),
        )
        self._gguf = info
        self._clear_slots(slots)
        self._host_cache = HostPromptCache(
            cache_mib * 2**20, kv_cache_bytes(info, 1, settings.kv_type)
        )
        return self._info

    def _start(self, xllamacpp: Any, params: Any, path: Path, info: gguf_file.GGUFInfo) -> None:
        saved = SignalHandlers()
        try:
            self._server = xllamacpp.Server(params)
        except RuntimeError as exc:
            if self.settings.kv_type != "f16":
                raise SettingsError(
                    f"llama.cpp could not start with a {self.settings.kv_type} KV cache for "
                    f"{path.name} (this build or this model cannot quantize it)",
                    "use --kv-type f16, or run with --debug to see llama.cpp's reasons",
                ) from exc
            raise load_error(path, info) from exc
        finally:
            saved.restore()  # llama.cpp installs its own SIGINT/SIGTERM handlers
        self._routes = LoopbackRoutes(self._server.listening_address, self._key)

    def _check_numbers(self, path: Path, info: gguf_file.GGUFInfo) -> None:
        """One token from a one-token prompt, with its probability: the weights of a
        damaged file (NaN or inf) give none, and every reply would be noise or nothing.
        This costs one token's decode at load, which the first reply gets back: the
        weights it touched are in memory by then (llama.cpp's own warm-up is off)."""
        assert self._server is not None
        vocab = max(1, len(info.tokens))
        first = int(info.metadata.get("tokenizer.ggml.bos_token_id") or 1) % vocab
        result = self._server.handle_completions(
            {
                "prompt": [first],
                "max_tokens": 1,
                "n_probs": 1,
                "temperature": 0,
                "cache_prompt": False,
                "id_slot": 0,
            }
        )
        try:
            logprob = result["choices"][0]["logprobs"]["content"][0]["logprob"]
        except (KeyError, IndexError, TypeError):
            return  # an answer of another shape (another llama.cpp): nothing to judge
        if logprob is None or not math.isfinite(float(logprob)):
            self.unload()
            raise ModelNotFoundError(
                f"{path.name} is damaged: the model's output is not a number (NaN or "
                "inf), so its replies would be noise or nothing",
                "download the file again (and compare its sha256 with the one on the "
                "Hub), or use another quantization of the model",
            )

    def _choose_template(self, info: gguf_file.GGUFInfo, name: str, notes: list[str]) -> str:
        """The prompt template for ``auto``: the GGUF's own, or one named for the model."""
        self._chat_template = None
        if info.chat_template:
            self._chat_template = templates.ChatTemplate(
                info.chat_template,
                bos_token=info.token("bos") or "",
                eos_token=info.token("eos") or "",
            )
        template, notice = templates.choose_template_name(
            str(name),
            self._chat_template is not None,
            len(info.tokens) or None,
            info.architecture == "llama",
        )
        self._auto_template = template
        if notice:
            notes.append(notice)
        return template

    def _follow_load(self) -> None:
        """Rebuild llama.cpp's context when the cores free for decoding changed (only
        for small models, where that takes a fraction of a second: threads.py)."""
        choice = self._planner.before_reply() if self._planner is not None else None
        if choice is None or self._server is None or self._info is None:
            return
        self._params.cpuparams.n_threads = choice.threads
        self._params.cpuparams_batch.n_threads = self.prefill_threads or choice.threads
        self._rebuild()
        self._info = dataclasses.replace(self._info, threads=choice.threads)

    def _rebuild(self) -> None:
        """Restart llama.cpp with ``self._params`` as they are now (the threads, what
        speculates, the draft's threads following the model's): the model file stays
        mapped, nothing cached survives."""
        import xllamacpp

        assert self._gguf is not None and self._info is not None
        configure(
            self._params, xllamacpp, self._spec_kind, self.settings, self._draft,
            threads=self._params.cpuparams.n_threads, gpu_layers=self._info.gpu_layers or 0,
        )  # fmt: skip
        self.unload_server()
        self._start(xllamacpp, self._params, Path(self._info.path), self._gguf)
        self._clear_slots(len(self._slots))
        self._host_cache.clear()

    def _speculation(
        self, info: gguf_file.GGUFInfo, report: Progress
    ) -> tuple[str, gguf_file.GGUFInfo | None]:
        """What speculates (off, ngram or draft) and the draft model's header, its
        vocabulary checked against the model's."""
        kind = self.settings.speculation
        if kind != "draft":
            return kind, None
        assert self.settings.draft_model is not None  # LoadSettings.check
        try:
            source = sources.resolve_gguf(
                self.settings.draft_model, None, self.settings.draft_gguf_file, report
            )
        except VicunaError as exc:  # the same checks as the model's, told as the draft's
            raise draft_not_found(exc) from None
        draft = gguf_file.read(source.path)
        check_gguf_vocabulary(info, draft)
        return kind, draft

    def _speculation_text(self) -> str | None:
        """The status bar's name for it: ngram, draft x.gguf, or auto's state."""
        draft = self._draft.name if self._draft is not None else None
        return speculation_state(self._spec_kind, draft, self._auto)

    def _follow_speculation(self) -> None:
        """Apply auto's decision from the last reply: speculation on or off for the
        chat (llama.cpp takes it at start-up: the context is rebuilt)."""
        on, self._spec_next = self._spec_next, None
        if on is None or self._server is None or self._info is None or self._auto is None:
            return
        self._spec_kind = self._auto.kind if on else "off"
        self._rebuild()
        self._info = dataclasses.replace(self._info, speculation=self._speculation_text())

    def _judge_speculation(self, stats: ReplyStats) -> Notice | None:
        """auto: after a reply, whether speculation goes on or off for the next."""
        if self._auto is None:
            return None
        self._spec_next, why = self._auto.after_reply(stats)
        if self._auto.decided and self._info is not None:
            self._info = dataclasses.replace(self._info, speculation=self._speculation_text())
        return Notice(why) if why else None

    def _clear_slots(self, count: int) -> None:
        """``count`` empty slots: nothing cached, nothing held, none used yet."""
        self._slots = [[] for _ in range(count)]
        self._held = [[] for _ in range(count)]
        self._used = [0] * count

    def unload_server(self) -> None:
        server, self._server = self._server, None
        if self._routes is not None:
            self._routes.close()
            self._routes = None
        del server  # llama.cpp stops its loop and frees the model

    def cancel(self) -> None:
        """Nothing to close: the token callback sees the cancel event."""

    def memory_in_use(self) -> int | None:
        return None

    def reset_cache(self) -> None:
        self._slots = [[] for _ in self._slots]
        self._fresh = True

    def unload(self) -> None:
        self.unload_server()
        self._info = None
        if self._planner is not None:
            self._planner.close()
        self._planner = None
        self._gguf = None
        self._clear_slots(1)

    # -- tokens --------------------------------------------------------------------------

    def tokenize(self, text: str, renderer: templates.PromptRenderer) -> list[int]:
        # As on the transformers path: named templates leave BOS to the tokenizer, chat
        # templates write their own special tokens.
        add_special = not isinstance(renderer, templates.ChatTemplate)
        assert self._routes is not None, "the model is not loaded"
        result = self._routes.post(
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
        return sampling_body(request.generation, seed, self.info.context_length, self.ignore_eos)

    def generate(self, request: ChatRequest, cancel: threading.Event) -> Iterator[EngineEvent]:
        started = time.perf_counter()
        if self._server is None:
            raise GenerationError("no model is loaded", "wait for the model to load")
        self._follow_load()
        self._follow_speculation()
        prepared = self.prepare(request)
        gen = request.generation
        seed = gen.seed if gen.seed is not None else (None if gen.greedy else secrets.randbits(31))
        fresh, self._fresh = self._fresh, False
        slot = self._pick_slot(prepared.ids)
        restored = self._host_cache.before_request(self._held[slot], prepared.ids)
        # What the slot already holds, or what llama.cpp takes back from its prompt
        # cache (another chat, come back to): the first prefill chunk starts past it,
        # so that llama.cpp keeps it all rather than the chunk's share of it.
        predicted = 0 if fresh else max(restored, common_prefix(self._slots[slot], prepared.ids))
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
        cached_first = yield from self._prefill(
            request.request_id, prepared.ids, predicted, fresh, sampling, cancel, slot
        )
        reply = Reply(StopMatcher([*prepared.renderer.stop_strings, *gen.stop]), started, started)
        yield from given_start(request, reply)
        body = {
            "prompt": prepared.ids,
            "max_tokens": prepared.max_new_tokens,
            "stream": True,
            "cache_prompt": not (fresh and cached_first is None),
            "id_slot": slot,
            **sampling,
            **(request.constraint.record() if request.constraint is not None else {}),
            **({"logprobs": request.logprobs} if request.logprobs else {}),
            # while speculating each token carries the counts so far (live, and to tell
            # which tokens were kept drafts)
            **({"timings_per_token": True} if self._spec_kind != "off" else {}),
        }
        if cancel.is_set():
            reply.finish = FINISH_CANCELLED
        else:
            stream = CompletionStream(self._server, body, cancel)
            try:
                yield from read_reply(stream, request.request_id, cancel, reply)
            except GenerationError as exc:
                raise refused_constraint(request, exc) from None
            finally:
                stream.close()
        if reply.finish != FINISH_STOP:
            tail = reply.flush()
            if tail:
                yield ReplyDelta(request.request_id, tail)
        # What the slot's cache holds now: the prompt, then the reply's tokens (their ids
        # are known when log-probabilities were asked for: a branch from a token then
        # starts reading where the cache ends, not after the prompt).
        # (while speculating, llama.cpp gives log-probabilities, and so ids, only for the
        # tokens it did not draft: then the reply's ids are not known)
        known = reply.ids if len(reply.ids) == reply.count else []
        self._slots[slot] = [*prepared.ids, *known]
        self._held[slot] = [*prepared.ids, *known, *[-1] * (reply.count - len(known))]
        self._turn += 1
        self._used[slot] = self._turn
        stats = reply.llama_stats(prepared, cached_first, predicted, seed)
        stats = dataclasses.replace(
            stats,
            threads=self.info.threads,
            prompt_cache_bytes=self._host_cache.held,
            speculation=described(self._spec_kind, self._draft.name if self._draft else None),
        )
        stats = self._baseline.after(stats, idle_drafting_free=self._spec_kind == "ngram")
        silent = nothing_said(reply.text, reply.finish)
        if silent is not None:
            yield silent
        switched = self._judge_speculation(stats)
        if switched is not None:
            yield switched
        tokens = tuple(reply.logprobs) if request.logprobs else None
        if tokens is not None and len(tokens) != reply.count and stats.drafted:
            tokens = None  # some tokens came from drafts: llama.cpp gave none for those
            yield Notice(
                "no token probabilities for this reply: while speculating, llama.cpp gives "
                "them only for the tokens it did not draft (turn speculation off, "
                "--speculate off or the settings pane, to see them)"
            )
        yield ReplyDone(request.request_id, reply.text, reply.finish, stats, tokens)

    def _pick_slot(self, ids: list[int]) -> int:
        """The slot for a prompt: the one whose cache it continues, unless using it
        would cost more than another slot does once switching back to the branch it
        holds is counted (a new branch, or a switch): then the least recently used
        other one, and the branch left stays cached (BENCHMARKS.md: branches)."""
        kept = [common_prefix(cached, ids) for cached in self._slots]
        best = max(range(len(kept)), key=lambda i: (kept[i], self._used[i]))
        if len(self._slots) == 1:
            return best
        other = min((i for i in range(len(kept)) if i != best), key=lambda i: self._used[i])
        moved = switch_cache(len(ids), kept[best], len(self._slots[best]), kept[other])
        return other if moved else best

    def _prefill(
        self,
        request_id: int,
        ids: list[int],
        cached: int,
        fresh: bool,
        sampling: dict[str, Any],
        cancel: threading.Event,
        slot: int = 0,
    ) -> Generator[PrefillProgress, None, int | None]:
        """Prefill a long prompt ``self.prefill_chunk`` tokens at a time, so that a cancel
        waits for one chunk, not the whole prompt, saying how far it got after each.
        Returns the tokens the first chunk found cached, or None when there was nothing
        to chunk."""
        found: int | None = None
        end = cached + self.prefill_chunk
        while end < len(ids) - 1 and not cancel.is_set():
            result = self._server.handle_completions(
                {
                    "prompt": ids[:end],
                    "max_tokens": 1,
                    "stream": False,
                    "cache_prompt": not (fresh and found is None),
                    "id_slot": slot,
                    **sampling,
                }
            )
            if "error" in result or "code" in result:
                raise generation_error(result)
            if found is None:
                found = int((result.get("timings") or {}).get("cache_n") or 0)
            yield PrefillProgress(request_id, end, len(ids))
            end += self.prefill_chunk
        return found


def refused_constraint(request: ChatRequest, exc: GenerationError) -> VicunaError:
    """llama.cpp's refusal of a schema or grammar, naming the file it came from."""
    constraint = request.constraint
    if constraint is None or "grammar" not in exc.message:
        return exc
    what = "JSON schema" if constraint.kind == JSON_SCHEMA else "GBNF grammar"
    return SettingsError(
        f"llama.cpp cannot use the {what} {constraint.source} ({exc.message})",
        "check its syntax: llama.cpp's grammars/README.md describes both",
    )
