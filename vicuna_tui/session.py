"""One conversation: its messages, its settings, and how they reach the store.

Every front end (TUI, simple, rich, pipe, replay) uses this class, so they save and
build prompts the same way.  It never blocks on the model: it builds requests for the
engine thread and records what comes back.

Writes go through a ``Writer``: at once for the line front ends (``direct_writer``),
on the store's own thread for the TUI (``store.thread.StoreThread``).  What to write is
worked out here, on the caller's thread, as ``Writes``; nothing is lost when the disk
fails: messages stay in memory, the failure is reported through ``warn``, and every
later change retries the save.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vicuna_tui.engine.constraints import OutputConstraint
from vicuna_tui.engine.events import (
    FINISH_ERROR,
    ChatRequest,
    ModelInfo,
    ReplyDone,
    ReplyFailed,
    ReplyStats,
    TokenLogprob,
)
from vicuna_tui.engine.settings import GenerationSettings, LoadSettings
from vicuna_tui.engine.templates import ASSISTANT, USER
from vicuna_tui.engine.tokens import saved_tokens
from vicuna_tui.session_branches import BranchTree
from vicuna_tui.session_turns import prompt_turns
from vicuna_tui.session_writes import ChatWriter, SaveState, Writer, direct_writer
from vicuna_tui.store import Conversation, SavedMessage, Store, StoreError, make_title, now


class _Unset:
    """Marks an argument that was not given (None is a valid system message)."""


UNSET = _Unset()


def conversation_record(
    title: str,
    *,
    load: LoadSettings,
    info: ModelInfo | None,
    template: str,
    system_message: str | None,
    generation: GenerationSettings,
    endpoint: str | None,
    replay_of: str | None,
    run: str | None = None,
) -> Conversation:
    """A new chat's record: what it runs on and with which settings."""
    stamp = now()
    return Conversation(
        id=uuid.uuid4().hex,
        title=title,
        created_at=stamp,
        updated_at=stamp,
        model_path=(load.model_path or (info.path if info else None)),
        model_name=info.name if info else None,
        revision=load.revision,
        template=template,
        system_message=system_message,
        generation=generation.as_record(),
        load=dataclasses.asdict(load),
        backend=info.backend if info else "local",
        endpoint=endpoint or (info.endpoint if info else None),
        replay_of=replay_of,
        run=run,
    )


@dataclass(frozen=True)
class TokenFork:
    """A reply being written from another's token: where it forked (saved with it) and
    its given start's tokens (saved before its own)."""

    record: dict[str, Any]
    given: tuple[TokenLogprob, ...]


def reply_origin(
    info: ModelInfo | None,
    template: str,
    generation: GenerationSettings,
    constraint: OutputConstraint | None = None,
) -> dict[str, Any]:
    """What wrote a reply: model, backend, template and settings (with the schema or
    grammar it was held to), saved with it."""
    settings = generation.as_record()
    if constraint is not None:
        settings.update(constraint.record())
    if info is None:
        return {"settings": settings}
    return {
        "model": info.name,
        "backend": "remote" if info.backend == "remote" else info.engine,
        "template": template,
        "settings": settings,
    }


class ChatSession:
    def __init__(
        self,
        store: Store | None,
        *,
        generation: GenerationSettings | None = None,
        template: str = "auto",
        system_message: str | None = None,
        load: LoadSettings | None = None,
        endpoint: str | None = None,
        warn: Callable[[str], None] | None = None,
        not_saving: str | None = None,
        writer: Writer | None = None,
        pinned: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = store  # for reads (open); None in the TUI, which reads on its thread
        # Its way to the store: what is written, what is not, and why not (the store
        # could not be opened, the last save failed; None while saved or --no-save).
        self.writes = ChatWriter(
            writer or (direct_writer(store) if store is not None else None),
            SaveState(not_saving, warn or (lambda text: None)),
            warn or (lambda text: None),
        )
        self.generation = generation or GenerationSettings()
        self.template = template
        self.system_message = system_message
        # The schema or grammar every reply must hold to (-p and the pipe), else None.
        self.constraint: OutputConstraint | None = None
        self.logprobs = 0  # alternatives asked with each token's log-probability (--logprobs)
        self.load = load or LoadSettings()
        self.endpoint = endpoint
        # This run's command-line settings: they beat a saved chat's when one is opened
        # (``--resume ID --max-new-tokens 300``, or a chat picked in the TUI).
        self.pinned = dict(pinned or {})
        self.model_info: ModelInfo | None = None
        self.conversation: Conversation | None = None
        self.branches = BranchTree()  # every message, and the path shown
        self.replay_of: str | None = None
        self.run: str | None = None  # the bench run this chat answers a question of
        self._run_title: str | None = None
        self._warn = warn or (lambda text: None)
        self._next_request = 1
        self._fork: TokenFork | None = None  # the branch from a token being written

    # -- settings ------------------------------------------------------------------------

    @property
    def resolved_template(self) -> str:
        if self.template == "auto" and self.model_info is not None:
            return self.model_info.template
        return self.template

    def set_model(self, info: ModelInfo) -> None:
        """The model now answering; an open chat records a switch of model or server."""
        self.model_info = info
        if info.backend == "remote":
            self.endpoint = info.endpoint
        conv = self.conversation
        if conv is None or not self.saving:
            return
        current = (conv.backend, conv.endpoint, conv.model_name)
        wanted = (info.backend, info.endpoint, info.name)
        if current != wanted:
            conv.backend, conv.endpoint, conv.model_name = wanted
            self.writes.update(
                conv,
                {
                    "backend": info.backend,
                    "endpoint": info.endpoint,
                    "model_name": info.name,
                    "model_path": info.path if info.backend == "local" else conv.model_path,
                },
            )

    def update_settings(
        self,
        *,
        generation: GenerationSettings | None = None,
        template: str | None = None,
        system_message: str | _Unset | None = UNSET,
    ) -> None:
        """Change settings; applies to the next reply and is saved with the chat."""
        if generation is not None:
            self.generation = generation
        if template is not None:
            self.template = template
        if not isinstance(system_message, _Unset):
            self.system_message = system_message
        if self.conversation is not None:
            self.writes.update(
                self.conversation,
                {
                    "generation": self.generation.as_record(),
                    "template": self.resolved_template,
                    "system_message": self.system_message,
                },
            )

    # -- conversations ---------------------------------------------------------------------

    @property
    def not_saving(self) -> str | None:
        """Why this chat is not being saved (the store could not be opened, or the last
        save failed); None while it is saved, or with --no-save."""
        return self.writes.state.not_saving

    def stop_saving(self, error: StoreError) -> None:
        self.writes.state.stop(error)

    @property
    def saving(self) -> bool:
        """Whether this chat is written anywhere (False with --no-save)."""
        return self.writes.saving

    def join_run(self, run: str, title: str) -> None:
        """Make this chat one answer of the bench run ``run``, saved titled ``title``."""
        self.run = run
        self._run_title = title

    def new_chat(self) -> None:
        self.conversation = None
        self.branches.reset([], [])
        self.replay_of = None
        self.run = None
        self._run_title = None
        self.writes.forget()

    def open(self, conversation_id: str) -> Conversation:
        """Load a saved conversation, with its template, system message and sampling."""
        if self.store is None:
            raise StoreError(
                "conversations are not being saved (--no-save)",
                "run without --no-save to open saved chats",
            )
        return self.show(self.store.get(conversation_id))

    def show(self, conv: Conversation) -> Conversation:
        """Continue a saved conversation, read from the store (by ``open``, or by the
        TUI on its store thread)."""
        self.conversation = conv
        self.branches.reset(conv.messages, conv.tree)
        self.writes.opened({m.uid for m in self.tree})
        if conv.template:
            self.template = conv.template
        self.system_message = conv.system_message
        if conv.generation:
            self.generation = self.generation.with_record(conv.generation)
        self._apply_pinned()
        return conv

    def _apply_pinned(self) -> None:
        """Lay this run's flags over the settings a saved chat brought."""
        pinned = self.pinned
        sampling = {k: v for k, v in pinned.items() if hasattr(self.generation, k)}
        if sampling:
            self.generation = dataclasses.replace(self.generation, **sampling)
        if "template" in pinned:
            self.template = pinned["template"]
        if "system_message" in pinned:
            self.system_message = pinned["system_message"]

    def unpin(self, name: str) -> None:
        """A setting edited in the UI is no longer this run's flag."""
        self.pinned.pop(name, None)

    @property
    def title(self) -> str:
        if self.conversation is not None:
            return self.conversation.title
        return self._title_from_first_message()

    def _title_from_first_message(self) -> str:
        """The title rule: the first message the user wrote, on one short line
        ("New chat" before there is one)."""
        return make_title(next((m.content for m in self.messages if m.role == USER), ""))

    # -- branches: the tree is ``self.branches``; these change it and save ----------------

    @property
    def messages(self) -> list[SavedMessage]:
        """The path shown: what the model sees."""
        return self.branches.path

    @property
    def tree(self) -> list[SavedMessage]:
        """Every message, on every branch, oldest first."""
        return self.branches.nodes

    def _back_to(self, index: int) -> None:
        self.branches.back_to(index)
        self.writes.path_moved()

    def _delete_from(self, index: int) -> None:
        """Delete the message at ``index`` and every branch below it, and save."""
        uid = self.messages[index].uid
        self.writes.deleted(uid, self.branches.delete_from(index))
        self.save()

    def _shown(self, changed: bool) -> bool:
        """The tree now shows another path (``changed``): saved as the one shown."""
        if changed:
            self.writes.path_moved()
            self.save()
        return changed

    def remove_turn_at(self, index: int | None = None) -> bool:
        """Delete the turn holding message ``index`` (default: the last turn): its user
        message and everything below it, on every branch.  False if there is none."""
        start = self.branches.turn_start(index)
        if start is None:
            return False
        self._delete_from(start)
        return True

    def remove_last_turn(self) -> bool:
        return self.remove_turn_at(None)

    def regenerate(self) -> ChatRequest | None:
        """Ask again for the last user message; the old reply is kept as a branch."""
        if not self.messages:
            return None
        earlier = ""
        if self.messages[-1].role == ASSISTANT:
            earlier = self.messages[-1].content
            self._back_to(len(self.messages) - 1)
        if not self.awaiting_reply:
            return None
        self.save()
        return dataclasses.replace(self._request(), earlier_reply=earlier)

    def branch_from_token(self, index: int, at: int, token: str) -> ChatRequest | None:
        """A new reply beside the one at ``index``: its tokens up to ``at``, then
        ``token`` (one of the alternatives recorded there), then what the model writes
        on from there.  The old reply, and all that followed it, stay.  None when the
        reply has no recorded tokens there, or ``token`` is not one of them."""
        if not 0 <= index < len(self.messages) or self.messages[index].role != ASSISTANT:
            return None
        source = self.messages[index]
        tokens = saved_tokens(source.tokens)
        if tokens is None or not 0 <= at < len(tokens):
            return None
        choice = next((c for c in tokens[at].top if c.token == token), None)
        if choice is None:
            return None
        chosen = TokenLogprob(choice.token, choice.logprob, tokens[at].top, choice.id)
        given = (*tokens[:at], chosen)
        self._back_to(index)
        self.save()
        request = self._request()
        gen = request.generation
        self._fork = TokenFork({"from": source.uid, "at": at, "token": token}, given)
        ids = tuple(t.id for t in given if t.id is not None)
        info = self.model_info
        same_model = info is not None and (source.model, source.backend) == (
            info.name,
            info.engine,
        )
        return dataclasses.replace(
            request,
            reply_prefix="".join(t.token for t in given),
            # the ids the model wrote, when this model wrote them (else the text is read)
            reply_prefix_ids=ids if same_model and len(ids) == len(given) else (),
            # the reply as a whole stays within max new tokens
            generation=dataclasses.replace(
                gen, max_new_tokens=max(1, gen.max_new_tokens - len(given))
            ),
        )

    def edit_last(self, text: str) -> ChatRequest | None:
        """Send ``text`` in place of the last user message, as a new branch beside it."""
        index = self.branches.turn_start()  # the last user message
        return None if index is None else self.edit_at(index, text)

    def edit_at(self, index: int, text: str) -> ChatRequest | None:
        """Send ``text`` in place of the user message at ``index``: a new branch beside
        it (the old one, and all that followed it, stay)."""
        if not 0 <= index < len(self.messages) or self.messages[index].role != USER:
            return None
        after = self.messages[index + 1] if index + 1 < len(self.messages) else None
        earlier = after.content if after is not None and after.role == ASSISTANT else ""
        self._back_to(index)
        return dataclasses.replace(self.add_user(text), earlier_reply=earlier)

    def switch_branch(self, index: int, step: int) -> bool:
        """Show the sibling ``step`` away from the message at ``index`` (and below it
        the branch last shown there).  False when there is none that way."""
        return self._shown(self.branches.switch(index, step))

    def choose_branch(self, index: int, number: int) -> bool:
        """Show sibling ``number`` (from 1) of the message at ``index``."""
        which, _ = self.branches.branch_at(index)
        return self.switch_branch(index, number - which)

    def show_branch_of(self, uid: str) -> bool:
        """Show the branch that holds message ``uid`` (a search hit).  False if the
        message is not in this chat."""
        return self._shown(self.branches.show_branch_of(uid))

    def branch_for_replay(self) -> bool:
        """Show the path only down to its first user message, so that a replay's first
        reply becomes a branch beside the saved one and its later turns follow that
        branch.  False when no user message is shown."""
        index = self.branches.first_user_index()
        if index is None:
            return False
        self._back_to(index + 1)
        return True

    def replay_turn(self, text: str, saved_reply: str = "") -> ChatRequest:
        """A replay's next turn: ``text`` as the next user message, unless the path shown
        already ends with that message waiting for its reply (a replay's first turn).
        ``saved_reply``: the reply saved for it, which the new one may repeat."""
        if self.awaiting_reply and self.messages[-1].content == text:
            self.save()
            request = self._request()
        else:
            request = self.add_user(text)
        return dataclasses.replace(request, earlier_reply=saved_reply)

    def drop_unanswered(self) -> str | None:
        """After a reply failed with nothing written: a user message that has replies on
        other branches (a regenerate, a branch from a token) shows the one last shown
        again, and None is returned; a message never answered is taken back, and its
        text returned for the input.  No reply is ever lost to a failure."""
        self._fork = None
        if not self.awaiting_reply:
            return None
        index = len(self.messages) - 1
        if self._shown(self.branches.show_below(index)):
            return None
        text = self.messages[index].content
        self._delete_from(index)
        return text

    # -- turns -------------------------------------------------------------------------------

    def turns(self, *, upto: int | None = None) -> tuple[tuple[str, str], ...]:
        return prompt_turns(self.messages if upto is None else self.messages[:upto])

    def _request(self) -> ChatRequest:
        self._fork = None
        request = ChatRequest(
            turns=self.turns(),
            generation=self.generation,
            system_message=self.system_message,
            template=self.template,
            request_id=self._next_request,
            constraint=self.constraint,
            logprobs=self.logprobs,
        )
        self._next_request += 1
        return request

    def preview_request(self, draft: str = "") -> ChatRequest:
        """A request for the template view: the history plus ``draft`` as the next turn."""
        turns = self.turns()
        if turns and turns[-1][0] == USER:
            turns = turns[:-1]
        return ChatRequest(
            turns=(*turns, (USER, draft)),
            generation=self.generation,
            system_message=self.system_message,
            template=self.template,
            request_id=0,
        )

    def add_user(self, text: str) -> ChatRequest:
        """Record the user's message (handed to the writer at once) and ask for a reply."""
        self._append(SavedMessage(role=USER, content=text))
        self.save()
        return self._request()

    def _append(self, message: SavedMessage) -> SavedMessage:
        return self.branches.append(message)

    def _sync_model(self) -> None:
        if self.model_info is not None:
            self.set_model(self.model_info)

    def record_reply(
        self,
        text: str,
        finish_reason: str,
        stats: ReplyStats | None = None,
        tokens: tuple[TokenLogprob, ...] | None = None,
    ) -> SavedMessage:
        """Record a reply (``tokens``: its tokens' probabilities, when they were asked
        for; a branch from a token gets its given start's before them)."""
        stats = stats or ReplyStats()
        fork, self._fork = self._fork, None
        if fork is not None and tokens is not None:
            tokens = (*fork.given, *tokens)
        message = SavedMessage(
            role=ASSISTANT,
            content=text,
            finish_reason=finish_reason,
            prompt_tokens=stats.prompt_tokens or None,
            new_tokens=stats.new_tokens,
            time_to_first_token=stats.time_to_first_token,
            tokens_per_second=stats.tokens_per_second,
            seed=stats.seed,
            tokens=[t.compact() for t in tokens] if tokens else None,
            fork=fork.record if fork is not None else None,
            **reply_origin(
                self.model_info, self.resolved_template, self.generation, self.constraint
            ),
        )
        if stats.speculation is not None:  # what drafted it, so a replay can say
            message.settings = {**(message.settings or {}), "speculation": stats.speculation}
        self._append(message)
        self.save()
        self._sync_model()
        return message

    def record_failure(self, partial_text: str) -> SavedMessage | None:
        """A reply that broke off: its partial text is kept, marked as an error."""
        if not partial_text:
            return None
        return self.record_reply(partial_text, FINISH_ERROR)

    def record_result(self, result: ReplyDone | ReplyFailed) -> str:
        """Record what ``Driver.ask`` brought back; returns the reply's text (the part
        written before a failure)."""
        if isinstance(result, ReplyDone):
            self.record_reply(result.text, result.finish_reason, result.stats, result.tokens)
            return result.text
        self.record_failure(result.partial_text)
        return result.partial_text

    @property
    def awaiting_reply(self) -> bool:
        return bool(self.messages) and self.messages[-1].role == USER

    def last_user_text(self) -> str | None:
        return next((m.content for m in reversed(self.messages) if m.role == USER), None)

    def last_reply(self) -> SavedMessage | None:
        return next((m for m in reversed(self.messages) if m.role == ASSISTANT), None)

    def context_used(self) -> int | None:
        """How much of the model's context the last reply on the path shown used (its
        prompt and its own tokens), as saved with it; None before any reply."""
        reply = self.last_reply()
        if reply is None or reply.prompt_tokens is None:
            return None
        return reply.prompt_tokens + (reply.new_tokens or 0)

    def retry_pending(self) -> ChatRequest | None:
        """A request for a user message still waiting for its reply (e.g. after a failure)."""
        return self._request() if self.awaiting_reply else None

    def import_messages(self, messages: list[tuple[str, str]], *, title: str | None = None) -> None:
        """Start a new chat holding ``messages`` (e.g. from FastChat's !!load)."""
        self.new_chat()
        for role, text in messages:
            self._append(
                SavedMessage(
                    role=role, content=text, finish_reason="stop" if role == ASSISTANT else None
                )
            )
        self.save(title=title)

    # -- persistence ---------------------------------------------------------------------

    def save(self, *, title: str | None = None) -> None:
        """Hand whatever is not saved yet to the writer (which may write it later); the
        chat's record is made the first time (titled ``title``, else after the bench
        question or the first message)."""
        if not self.writes.active:
            return
        if self.conversation is None:
            self.conversation = conversation_record(
                title or self._run_title or self._title_from_first_message(),
                load=self.load,
                info=self.model_info,
                template=self.resolved_template,
                system_message=self.system_message,
                generation=self.generation,
                endpoint=self.endpoint,
                replay_of=self.replay_of,
                run=self.run,
            )
        conv = self.conversation
        if conv.title == "New chat":
            conv.title = self._title_from_first_message()
        leaf = self.messages[-1].uid if self.messages else None
        self.writes.save(conv, self.tree, leaf, self._save_as_new_chat)

    def _save_as_new_chat(self, exc: StoreError) -> None:
        """The chat was deleted by another program: everything in memory (every branch,
        the reply just made) goes into a new conversation with the old one's title and
        settings; the user is told once."""
        old = self.conversation
        if old is None or self.writes.state.stopped:
            return
        self.conversation = dataclasses.replace(old, id=uuid.uuid4().hex, messages=[])
        self.writes.forget()  # the deleted rows took their uids with them
        self.writes.path_moved()
        self._warn(f"{exc.message}: its {len(self.tree)} messages are saved again as a new chat")
        self.save()

    @property
    def unsaved(self) -> bool:
        return self.writes.unsaved(self.tree)
