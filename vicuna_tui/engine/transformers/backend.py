"""The local backend: a transformers model on this machine.

It renders the prompt, drops the oldest turns when the context is full, and runs its
own decode loop, so that it can keep the KV cache between turns (a new turn prefills
only its new tokens), stop within one token of a cancel, and time every reply.
"""

from __future__ import annotations

import dataclasses
import inspect
import secrets
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from vicuna_tui.engine import templates
from vicuna_tui.engine.backend import HoldsModel
from vicuna_tui.engine.drafting import (
    AutoSwitch,
    Baseline,
    Pacing,
    check_vocabulary,
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
    TokenChoice,
    TokenLogprob,
)
from vicuna_tui.engine.progress import Progress
from vicuna_tui.engine.prompting import (
    PreparedPrompt,
    ReplyTally,
    common_prefix,
    fit_prompt,
    given_start,
    nothing_said,
    switch_cache,
)
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
from vicuna_tui.engine.textstream import IncrementalDecoder, StopMatcher
from vicuna_tui.engine.threads import ThreadPlanner
from vicuna_tui.engine.transformers import sampling
from vicuna_tui.engine.transformers.draft_model import ModelDraft
from vicuna_tui.engine.transformers.grammar import GrammarCompiler, HeldOutput
from vicuna_tui.engine.transformers.kv_cache import STATIC_CAP, KVCache, spare_cache_fits
from vicuna_tui.engine.transformers.lookup import Drafter, PromptLookup
from vicuna_tui.errors import (
    GenerationError,
    ModelNotFoundError,
    OfflineError,
    OutOfMemoryError,
    SettingsError,
    VicunaError,
)

# Tokens per prefill forward.  A cancel waits for one chunk at most; BENCHMARKS.md
# ("Reading a long prompt in chunks") measures what that costs: nothing measurable.
PREFILL_CHUNK = 512


class LocalBackend(HoldsModel):
    """Owns one model.  Every method runs on the engine thread."""

    kind = "local"

    def __init__(self, settings: LoadSettings, *, reuse_cache: bool = True) -> None:
        self.settings = settings
        self._loaded: Any = None
        self._info: ModelInfo | None = None
        self._auto_template = templates.TOKENIZER_TEMPLATE
        self.kv = KVCache(reuse=reuse_cache)
        self._grammar: GrammarCompiler | None = None  # made when a schema first asks
        # Speculative decoding: what drafts (off, ngram, draft), the draft model, auto's
        # decision for the chat, the rate to measure it against; a reply written
        # without it (sampled) is said once.
        self._spec_kind = "off"
        self._drafter: ModelDraft | None = None
        self._auto: AutoSwitch | None = None
        self._baseline = Baseline()
        self._said_no_drafts = False
        # A second cache on a CPU: the branch left last stays cached for a switch back.
        self._spare: KVCache | None = None
        self._reuse = reuse_cache
        self._logits_to_keep = False
        self._cache_key = "past_key_values"
        self._step: Any = None  # the compiled single-token forward, with --compile
        self.grow_cache = True  # on the CPU fast path, a KV cache that grows in place
        self.fast_step = True  # and a plain LLaMA's own single-token forward (fastpath)
        # Tokens per prefill forward: a cancel waits for at most one chunk, and each one
        # says how far the reading got (PrefillProgress).
        self.prefill_chunk = PREFILL_CHUNK
        self._planner: ThreadPlanner | None = None  # CPU threads that follow the load

    # -- lifecycle -----------------------------------------------------------------------

    def check(self) -> None:
        from vicuna_tui.engine import sources

        self.settings.check()
        sources.check(self.settings.model_path, self.settings.revision)
        if self.settings.speculation == "draft":
            try:
                sources.check(self.settings.draft_model)
            except VicunaError as exc:
                raise draft_not_found(exc) from None

    def load(self, progress: Progress | None = None) -> ModelInfo:
        from vicuna_tui.engine.transformers import loader

        loaded = loader.load(self.settings, progress)
        self._drafter = None
        if self.settings.speculation == "draft":
            self._drafter = self._load_draft(loaded, progress)
        return self.attach(loaded)

    def _load_draft(self, loaded: Any, progress: Progress | None) -> ModelDraft:
        """The draft model, on the model's device and in its precision, its vocabulary
        checked against the model's."""
        from vicuna_tui.engine.transformers import loader

        settings = self.settings
        assert settings.draft_model is not None  # LoadSettings.check
        own = dataclasses.replace(
            settings,
            model_path=settings.draft_model,
            gguf_file=settings.draft_gguf_file,
            revision=None,
            compile=False,
            speculate="off",
            draft_model=None,
            draft_gguf_file=None,
        )
        try:
            draft = loader.load(own, progress)
        except (ModelNotFoundError, OfflineError) as exc:
            raise draft_not_found(exc) from None
        check_vocabulary(
            loaded.source.name, _vocabulary(loaded.tokenizer), draft.source.name,
            _vocabulary(draft.tokenizer),
        )  # fmt: skip
        return ModelDraft(draft, settings)

    def attach(self, loaded: Any) -> ModelInfo:
        """Use an already loaded model (a ``loader.LoadedModel``)."""
        import torch

        from vicuna_tui.engine.transformers.devices import available_devices

        self._loaded = loaded
        self._grammar = None
        model, tokenizer = loaded.model, loaded.tokenizer
        config = model.config
        has_chat_template = bool(getattr(tokenizer, "chat_template", None))
        name = loaded.source.hub_id or self.settings.model_path or loaded.source.name
        template, notice = templates.choose_template_name(
            str(name),
            has_chat_template,
            getattr(config, "vocab_size", None),
            getattr(config, "model_type", "") == "llama",
        )
        self._auto_template = template
        params = sum(p.numel() for p in model.parameters())
        self._logits_to_keep = "logits_to_keep" in inspect.signature(model.forward).parameters
        from vicuna_tui.engine.transformers.fastpath import cache_argument

        self._cache_key = cache_argument(model)
        cached = " (cached safetensors conversion)" if loaded.source.kind == "gguf" else ""
        if loaded.converted_now:
            cached = " (converted to safetensors now, cached for next time)"
        self._info = ModelInfo(
            name=loaded.source.name,
            path=str(loaded.source.path),
            source=loaded.source.description + cached,
            device=loaded.device,
            dtype=loaded.dtype,
            quantization=loaded.quantization,
            context_length=loaded.context_length,
            template=template,
            notices=(*loaded.notices, *([notice] if notice else [])),
            parameters=params,
            revision=self.settings.revision,
            devices=tuple(available_devices(torch)),
        )
        kind = self.settings.speculation
        if kind == "draft" and self._drafter is None:
            kind = "off"  # attached without load(): no draft model was loaded
        self._spec_kind = kind
        auto = self.settings.speculate_mode == "auto" and kind != "off"
        self._auto = AutoSwitch(kind) if auto else None
        self._info = dataclasses.replace(self._info, speculation=self._speculation_text())
        self._said_no_drafts = False
        self._baseline = Baseline()
        self._spare = KVCache(reuse=self._reuse) if spare_cache_fits(loaded, model) else None
        if self._planner is not None:
            self._planner.close()
        self._planner = None
        if str(loaded.device) == "cpu":
            # torch changes its thread count between replies at no cost (threads.py)
            self._planner = ThreadPlanner(self.settings.threads, adaptive=True)
            torch.set_num_threads(self._planner.current.threads)
            self._info = dataclasses.replace(self._info, threads=self._planner.current.threads)
        self.reset_cache()
        if self.settings.compile:
            self.use_static_cache(compile=True)
            if not str(loaded.device).startswith("cuda"):
                warning = (
                    "--compile is made for GPUs: on a CPU its preallocated cache makes every "
                    "token attend over all of its positions, about 5x slower than without it "
                    "(BENCHMARKS.md); drop --compile"
                )
                self._info = dataclasses.replace(self._info, notices=(*self._info.notices, warning))
        return self._info

    def cancel(self) -> None:
        """Nothing to close: the decode loop checks the cancel event every token."""

    def memory_in_use(self) -> int | None:
        """Bytes of GPU memory held by tensors, or None when the model is not on a GPU."""
        if self._loaded is None or not str(self._loaded.device).startswith("cuda"):
            return None
        import torch

        return sum(torch.cuda.memory_allocated(i) for i in range(torch.cuda.device_count()))

    def unload(self) -> None:
        self._loaded = None
        self._drafter = None
        self._grammar = None
        self._info = None
        self._step = None
        self.kv.unload()
        self._spare = None
        if self._planner is not None:
            self._planner.close()
            self._planner = None

        try:
            import gc

            import torch

            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    def reset_cache(self) -> None:
        self.kv.reset()
        if self._drafter is not None:
            self._drafter.reset()
        if self._spare is not None:
            self._spare.reset()

    def _pick_cache(self, ids: list[int]) -> None:
        """Make ``self.kv`` the cache for this prompt: the one it continues, or the
        spare, when a new branch would otherwise throw away the branch left
        (``prompting.switch_cache``)."""
        spare = self._spare
        if spare is None:
            return
        here, there = common_prefix(self.kv.ids, ids), common_prefix(spare.ids, ids)
        if there > here or switch_cache(len(ids), here, len(self.kv.ids), there):
            self.kv, self._spare = spare, self.kv

    # -- --compile: a static KV cache and a compiled decode step ---------------------------

    STATIC_CAP = STATIC_CAP

    def use_static_cache(self, *, compile: bool) -> None:
        """Preallocate the KV cache (fixed shapes), and compile the one-token step.

        With CUDA the compiled step replays as a CUDA graph ("reduce-overhead"), which
        removes the per-kernel launch cost that bounds eager decode.  The first reply
        pays for compiling.  Kernels fused by the compiler may sum in another order, so
        greedy output can differ from eager where two logits nearly tie.
        """
        import torch

        assert self._loaded is not None and self._info is not None
        self._spare = None  # one preallocated cache is enough memory
        length = self.kv.make_static(self._info.context_length)
        self._info = dataclasses.replace(self._info, context_length=length)
        if compile:
            mode = "reduce-overhead" if str(self._loaded.device).startswith("cuda") else "default"
            self._step = torch.compile(self._loaded.model.forward, mode=mode, dynamic=False)

    def _new_static_cache(self, length: int) -> Any:
        from transformers import StaticCache

        return StaticCache(config=self._loaded.model.config, max_cache_len=length)

    # -- prompts -------------------------------------------------------------------------

    def renderer(self, name: str) -> templates.PromptRenderer:
        if name == templates.AUTO:
            name = self._auto_template
        if name == templates.TOKENIZER_TEMPLATE:
            tokenizer = self._loaded.tokenizer
            if not getattr(tokenizer, "chat_template", None):
                raise SettingsError(
                    "this tokenizer has no chat template",
                    "choose a named template, e.g. vicuna_v1.1",
                )
            return templates.TokenizerTemplate(tokenizer)
        return templates.get_template(name)

    def tokenize(self, text: str, renderer: templates.PromptRenderer) -> list[int]:
        # Named templates rely on the tokenizer adding BOS (as FastChat does); chat
        # templates carry their own special tokens.
        add_special = not isinstance(renderer, templates.TokenizerTemplate)
        return list(self._loaded.tokenizer(text, add_special_tokens=add_special).input_ids)

    def prepare(self, request: ChatRequest) -> PreparedPrompt:
        """Render the prompt, dropping whole oldest turns until it fits the context."""
        return fit_prompt(
            request, self.renderer(request.template), self.info.context_length, self.tokenize
        )

    def preview(self, request: ChatRequest) -> PromptPreview:
        prepared = self.prepare(request)
        return PromptPreview(
            request.request_id, prepared.text, len(prepared.ids), prepared.dropped_turns
        )

    # -- generation ----------------------------------------------------------------------

    def generate(self, request: ChatRequest, cancel: threading.Event) -> Iterator[EngineEvent]:
        started = time.perf_counter()
        loaded = self._loaded
        if loaded is None:
            raise GenerationError("no model is loaded", "wait for the model to load")
        threads = self._follow_load()
        prepared = self.prepare(request)
        gen = request.generation
        seed = gen.seed if gen.seed is not None else (None if gen.greedy else secrets.randbits(62))
        tokenizer = loaded.tokenizer
        stop_ids = set(loaded.stop_token_ids) | set(prepared.renderer.stop_token_ids)
        held = None  # the schema or grammar every token is held to (xgrammar)
        if request.constraint is not None:
            if self._grammar is None:
                vocab = getattr(loaded.model.config, "vocab_size", None) or len(tokenizer)
                self._grammar = GrammarCompiler(tokenizer, vocab, loaded.stop_token_ids)
            held = self._grammar.held(request.constraint, stop_ids)
        decoder = IncrementalDecoder(
            lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
            prepared.ids[-4:] if request.reply_prefix else (),
        )
        self._pick_cache(prepared.ids)
        cached = self.kv.reuse_prefix(prepared.ids, self._new_static_cache)
        yield ReplyStarted(
            request.request_id,
            len(prepared.ids),
            cached,
            prepared.dropped_turns,
            prepared.max_new_tokens,
            seed,
        )
        reply = ReplyTally(StopMatcher([*prepared.renderer.stop_strings, *gen.stop]), started)
        yield from given_start(request, reply)
        chosen: list[sampling.Chosen] | None = [] if request.logprobs else None
        drafts, why_not = self._drafts_for(request, prepared.ids, held)
        if why_not and not self._said_no_drafts:
            self._said_no_drafts = True
            yield Notice(why_not)
        try:
            tokens = self._decode(
                request.request_id,
                prepared,
                cached,
                gen,
                seed,
                cancel,
                request.logprobs,
                chosen,
                held,
                drafts,
            )
            yield from self._read(
                tokens, request.request_id, stop_ids, decoder, reply, cancel, drafts
            )
        except VicunaError:
            self.reset_cache()
            raise
        except Exception as exc:
            self.reset_cache()
            raise _generation_failure(exc) from exc
        if reply.finish != FINISH_STOP:
            tail = reply.flush(decoder.flush())
            if tail:
                yield ReplyDelta(request.request_id, tail)
        stats = dataclasses.replace(reply.stats(prepared, cached, seed), threads=threads)
        stats, switched = self._after_speculation(stats, drafts, drafts_fit=not why_not)
        silent = nothing_said(reply.text, reply.finish)
        if silent is not None:
            yield silent
        if switched is not None:
            yield switched
        written = None
        if chosen is not None:
            written = token_logprobs(chosen, stop_ids, lambda i: tokenizer.decode([i]))
        yield ReplyDone(request.request_id, reply.text, reply.finish, stats, written)

    def _drafts_for(
        self, request: ChatRequest, ids: list[int], held: HeldOutput | None
    ) -> tuple[Drafter | None, str]:
        """What drafts this reply (n-gram lookup or the draft model), or why it is
        written without speculation.  With speculation unset, a reply that replaces an
        earlier one (a regenerate, an edit sent again, a replay) drafts from it by
        n-gram lookup: it costs nothing where nothing repeats."""
        implied = self.settings.speculate is None and self._drafter is None
        if self._spec_kind == "off" and not (implied and request.earlier_reply):
            return None, ""
        if held is not None:
            why = "replies held to a schema or grammar"
        elif request.logprobs:
            why = "replies asked for token probabilities"
        elif self.kv.static_len:
            why = "--compile's preallocated cache"
        elif self._auto is not None and not self._auto.on:
            return None, ""  # auto: the baseline reply, or off for the chat
        elif self._drafter is not None:
            drafter = self._drafter.begin(ids)
            drafter.guard = self._auto
            return drafter, ""
        else:
            earlier = self._loaded.tokenizer(request.earlier_reply, add_special_tokens=False)
            lookup = PromptLookup(ids, list(earlier.input_ids))
            if not request.generation.greedy:  # sampling strays from what it could copy:
                lookup.guard = AutoSwitch("ngram", on=True)  # it rests where it loses
            return lookup, ""
        if self._spec_kind == "off":
            return None, ""  # not asked for: nothing to say
        return None, f"speculation on transformers is not for {why}: those are written without it"

    def _speculation_text(self) -> str | None:
        """The model's info: what drafts (ngram, draft x), or auto's state."""
        auto = self._auto
        now = self._spec_kind if auto is None or auto.on else "off"
        draft = self._drafter.name if self._drafter is not None else None
        return speculation_state(now, draft, auto)

    def _after_speculation(
        self, stats: ReplyStats, drafts: Drafter | None, *, drafts_fit: bool
    ) -> tuple[ReplyStats, Notice | None]:
        """A reply's stats with what drafted it and the rate to compare with; and, under
        auto, whether speculation drafts the next replies (switched per reply here, at
        no cost), said when it goes off.  ``drafts_fit``: the reply was one speculation
        can write (not held to a schema, nor asked for probabilities)."""
        if drafts is not None:
            draft = self._drafter.name if self._drafter is not None else None
            shown = described(drafts.kind, draft)
            stats = drafts.tally.into(dataclasses.replace(stats, speculation=shown))
        idle_free = drafts is None or drafts.kind == "ngram"
        stats = self._baseline.after(stats, idle_drafting_free=idle_free)
        if self._auto is None or not drafts_fit:
            return stats, None
        _, why = self._auto.after_reply(stats)
        if self._info is not None:
            self._info = dataclasses.replace(self._info, speculation=self._speculation_text())
        return stats, Notice(why) if why else None

    def _follow_load(self) -> int | None:
        """The CPU threads for this reply: the cores free now, unless --threads."""
        if self._planner is None:
            return None
        choice = self._planner.before_reply()
        if choice is not None:
            import torch

            torch.set_num_threads(choice.threads)
        return self._planner.current.threads

    @staticmethod
    def _read(
        tokens: Iterator[int | PrefillProgress],
        request_id: int,
        stop_ids: set[int],
        decoder: IncrementalDecoder,
        reply: ReplyTally,
        cancel: threading.Event,
        drafts: Drafter | None = None,
    ) -> Iterator[ReplyDelta | PrefillProgress]:
        """The reply's text, token by token, up to a stop token or string, a cancel or
        the length limit (``reply.finish`` says which); with ``drafts``, the text its
        kept drafts wrote and the counts so far."""
        for token in tokens:
            if isinstance(token, PrefillProgress):
                yield token
                continue
            reply.tick()
            if token in stop_ids:
                reply.finish = FINISH_STOP
                return
            text = decoder.push(token)
            counts: tuple[int | None, int | None] = (None, None)
            if drafts is not None:
                drafts.tally.token(text, drafts.from_draft)
                counts = drafts.tally.live()
            delta = reply.push(text)
            if delta:
                yield ReplyDelta(request_id, delta, *counts)
            if reply.matcher.stopped:
                reply.finish = FINISH_STOP
                return
        if cancel.is_set():
            reply.finish = FINISH_CANCELLED

    def _decode(
        self,
        request_id: int,
        prepared: PreparedPrompt,
        cached: int,
        gen: GenerationSettings,
        seed: int | None,
        cancel: threading.Event,
        alternatives: int = 0,
        chosen: list[sampling.Chosen] | None = None,
        held: HeldOutput | None = None,
        drafts: Drafter | None = None,
    ) -> Iterator[int | PrefillProgress]:
        """The reply's tokens, after reading in the prompt's new part (a chunk at a time
        when it is long, with a PrefillProgress after each chunk but the last).
        ``chosen``, when given, takes each token's log-probability and its
        ``alternatives`` likeliest ones', from the model's own distribution; ``held``
        keeps every token within a schema or grammar."""
        import torch

        model = self._loaded.model
        device = self._loaded.input_device
        processors = sampling.processors(gen)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=device).manual_seed(seed)
        history = torch.tensor([prepared.ids], device=device) if processors else None
        feed_ids = prepared.ids[cached:]
        extra = {"logits_to_keep": 1} if self._logits_to_keep else {}
        fast_path = getattr(model, "_vicuna_fast_groups", None) is not None  # CPU fast path
        step = None  # the fast path's own single-token forward, with the growing cache
        if not self.kv.static_len and self.grow_cache and fast_path:
            from vicuna_tui.engine.transformers import fastpath

            if self.kv.value is None:
                self.kv.value = fastpath.growing_cache(model)
            if self.kv.value is not None and self.fast_step:
                step = getattr(model, "_vicuna_step", None)
        check_first = FirstLogits(self._loaded.source.name)
        try:
            with torch.inference_mode():
                feed_ids = yield from self._prefill(request_id, prepared, feed_ids, extra, cancel)
                if drafts is not None:
                    draw = Draw(processors, history, gen, generator)
                    yield from self._speculate_decode(
                        model,
                        feed_ids,
                        prepared.max_new_tokens,
                        cancel,
                        drafts,
                        draw,
                        check_first,
                        step,
                    )
                    return
                feed = torch.tensor([feed_ids], device=device)
                for _ in range(prepared.max_new_tokens):
                    if cancel.is_set():
                        return
                    if step is not None and len(feed_ids) == 1:
                        scores = step(feed, self.kv.value)  # appends to the cache in place
                    else:
                        out = self._forward(model, feed, len(feed_ids), extra)
                        self.kv.value = fastpath_output_cache(out)
                        scores = out.logits
                    self.kv.ids.extend(feed_ids)
                    logits = scores[:, -1, :].float()
                    check_first(logits)
                    token = sampling.draw(logits, processors, history, gen, generator, held)
                    if chosen is not None:  # the model's own numbers, before the sampler
                        chosen.append(sampling.logprobs_of(logits, token, alternatives))
                    yield token
                    feed_ids = [token]
                    feed = torch.tensor([feed_ids], device=device)
                    if history is not None:
                        history = torch.cat([history, feed], dim=1)
        finally:
            if fast_path:
                from vicuna_tui.engine.transformers import fastpath

                fastpath.release(model)

    def _speculate_decode(
        self,
        model: Any,
        feed_ids: list[int],
        budget: int,
        cancel: threading.Event,
        drafts: Drafter,
        draw: Draw,
        check_first: FirstLogits,
        step: Any = None,
    ) -> Iterator[int]:
        """Tokens with drafts (n-gram lookup or the draft model): each forward feeds the
        last token and the draft after it; the sampler keeps the draft's tokens one by
        one (greedy: those the argmax agrees with; sampled: speculative sampling,
        ``sampling.check_draft``), then writes its own token where it stopped keeping,
        or after the whole draft; the rest of the draft is cropped from the cache.
        Where drafting loses, it rests a while (``Pacing``); a step with nothing
        drafted takes the fast single-token forward (``step``), as without drafts."""
        import torch

        device = self._loaded.input_device
        draft: list[int] = []
        produced = 0
        pacing = Pacing(drafts.guard)
        while produced < budget and not cancel.is_set():
            positions = len(draft) + 1
            feed = torch.tensor([feed_ids], device=device)
            if step is not None and len(feed_ids) == 1:  # nothing drafted: the fast step
                scores = step(feed, self.kv.value)[0, -1:, :].float()
            else:
                keep = {"logits_to_keep": positions} if self._logits_to_keep else {}
                out = self._forward(model, feed, len(feed_ids), keep)
                self.kv.value = fastpath_output_cache(out)
                scores = out.logits[0, -positions:, :].float()
            self.kv.ids.extend(feed_ids)
            check_first(scores[-1:])
            kept, own = draw.through(scores, draft)
            drafts.tally.checked(len(draft), kept)
            if kept < len(draft):  # the rejected drafts leave the cache
                rejected = len(draft) - kept
                self.kv.value.crop(-rejected)
                del self.kv.ids[-rejected:]
            for at, token in enumerate([*draft[:kept], own]):
                drafts.from_draft = at < kept
                yield token
                drafts.add(token)
                produced += 1
                if produced >= budget:
                    return
            drafting = pacing.drafts_now(produced, drafts.tally)
            draft = drafts.propose(budget - produced - 1) if drafting else []
            feed_ids = [own, *draft]

    def _prefill(
        self,
        request_id: int,
        prepared: PreparedPrompt,
        feed_ids: list[int],
        extra: dict[str, Any],
        cancel: threading.Event,
    ) -> Generator[PrefillProgress, None, list[int]]:
        """Read a long prompt's new part into the cache ``prefill_chunk`` tokens at a
        time, saying how far it got after each chunk; stops early on a cancel.  Returns
        the part left for the first forward that gives the next token."""
        import torch

        model, device = self._loaded.model, self._loaded.input_device
        chunk, total = self.prefill_chunk, len(prepared.ids)
        while len(feed_ids) > chunk + 1 and not cancel.is_set():
            part = feed_ids[:chunk]
            out = self._forward(model, torch.tensor([part], device=device), chunk, extra)
            self.kv.value = fastpath_output_cache(out)
            self.kv.ids.extend(part)
            feed_ids = feed_ids[chunk:]
            yield PrefillProgress(request_id, total - len(feed_ids), total)
        return feed_ids

    def _forward(self, model: Any, feed: Any, count: int, extra: dict[str, Any]) -> Any:
        """The model's forward over ``count`` new tokens, on the static cache (and the
        compiled single-token step) with --compile, else on the dynamic one."""
        if not self.kv.static_len:
            cache = {self._cache_key: self.kv.value}
            return model(input_ids=feed, **cache, use_cache=True, **extra)
        import torch

        start = len(self.kv.ids)
        forward = self._step if self._step is not None and count == 1 else model
        return forward(
            input_ids=feed,
            **{self._cache_key: self.kv.value},
            cache_position=torch.arange(start, start + count, device=feed.device),
            use_cache=True,
            **extra,
        )


@dataclass
class Draw:
    """The sampler over a speculated reply: its processors, the ids written so far
    (for the repetition penalty), the settings and the seeded generator."""

    procs: Any
    history: Any
    gen: GenerationSettings
    generator: Any

    def through(self, scores: Any, draft: list[int]) -> tuple[int, int]:
        """The draft's tokens kept (``scores``: the model's logits at each drafted
        position and one past them) and the token the sampler writes after them."""
        import torch

        kept = 0
        for at, drafted in enumerate(draft):
            ok, token = sampling.check_draft(
                scores[at : at + 1], self.procs, self.history, self.gen, self.generator, drafted
            )
            self._wrote(token, torch)
            if not ok:
                return kept, token
            kept += 1
        token = sampling.draw(
            scores[len(draft) : len(draft) + 1], self.procs, self.history, self.gen, self.generator
        )
        self._wrote(token, torch)
        return kept, token

    def _wrote(self, token: int, torch: Any) -> None:
        if self.history is not None:
            written = torch.tensor([[token]], device=self.history.device)
            self.history = torch.cat([self.history, written], dim=1)


def _vocabulary(tokenizer: Any) -> list[str]:
    """A tokenizer's tokens by id (added tokens included)."""
    return [str(t) for t in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))]


def fastpath_output_cache(output: Any) -> Any:
    from vicuna_tui.engine.transformers.fastpath import output_cache

    return output_cache(output)


def _generation_failure(exc: Exception) -> VicunaError:
    from vicuna_tui.engine.transformers.devices import is_oom

    if is_oom(exc):
        return OutOfMemoryError(
            "out of memory while generating",
            "lower --max-new-tokens, start a new chat, or load with --load-8bit",
        )
    return GenerationError(
        f"generation failed: {type(exc).__name__}: {exc}", "run with --debug for details"
    )


class FirstLogits:
    """Checks a reply's first logits (one sync a reply): a model whose weights are
    damaged, or overflow in their dtype, gives NaN or inf, and every token after would
    be noise."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.done = False

    def __call__(self, logits: Any) -> None:
        if self.done:
            return
        self.done = True
        import torch

        if not bool(torch.isfinite(logits).all()):
            raise GenerationError(
                f"{self.name}'s output is not a number (NaN or inf): its weights are "
                "damaged, or overflow in this dtype",
                "download the model again, or load it in another precision "
                "(--dtype float32 or bfloat16)",
            )


def token_logprobs(
    chosen: list[sampling.Chosen],
    stop_ids: set[int],
    text_of: Callable[[int], str],
) -> tuple[TokenLogprob, ...]:
    """The written tokens' log-probabilities as events (the stop token left out)."""
    return tuple(
        TokenLogprob(
            text_of(token),
            logprob,
            tuple(TokenChoice(text_of(i), v, i) for i, v in zip(ids, values, strict=True)),
            token,
        )
        for token, logprob, ids, values in chosen
        if token not in stop_ids
    )
