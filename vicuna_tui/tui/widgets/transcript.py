"""The transcript: user messages as literal text, replies as streamed Markdown.

Model text is never parsed as Textual or Rich markup: user text is plain ``Content``
and replies go through the Markdown widget, which does not read markup.  Links in
replies are not opened by clicking; the URL is shown instead.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Static

from vicuna_tui.engine.events import TokenLogprob, rate_text
from vicuna_tui.engine.settings import GenerationSettings
from vicuna_tui.engine.tokens import saved_tokens
from vicuna_tui.errors import VicunaError
from vicuna_tui.store import SavedMessage
from vicuna_tui.textsafe import terminal_safe
from vicuna_tui.tui.plain import plain
from vicuna_tui.tui.widgets.tokens import NOT_RECORDED, TokenText, shown_tokens

if TYPE_CHECKING:
    # Imported where a reply is first drawn: Markdown (markdown-it, Pygments) costs the
    # first frame of a new chat about 50 ms.
    from textual.widgets import Markdown
    from textual.widgets._markdown import MarkdownStream

_FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL)


def code_blocks(text: str) -> list[str]:
    """The fenced code blocks of a Markdown text, without their fences."""
    return [match.group(2) for match in _FENCE.finditer(text)]


def describe_stats(message: SavedMessage, *, timing: bool = True) -> str:
    """A reply's line under it; without ``timing`` (a blind arena battle before the
    vote) no speeds, which would tell the models apart."""
    parts = []
    if message.finish_reason == "cancelled":
        parts.append("⏹ stopped")
    elif message.finish_reason == "error":
        parts.append("⚠ interrupted")
    elif message.finish_reason == "length":
        parts.append("… reached max new tokens")
    if message.new_tokens:
        parts.append(f"{message.new_tokens} tokens")
    fork = message.fork or {}
    if isinstance(fork.get("at"), int) and isinstance(fork.get("token"), str):
        parts.append(f"branched at token {fork['at'] + 1} ({fork['token']!r})")
    if not timing:
        return " · ".join(parts)
    if message.tokens_per_second:
        parts.append(rate_text(message.tokens_per_second))
    if message.time_to_first_token is not None:
        parts.append(f"first token {message.time_to_first_token:.2f} s")
    return " · ".join(parts)


def reply_tokens(
    message: SavedMessage,
) -> tuple[tuple[TokenLogprob, ...] | None, GenerationSettings]:
    """A saved reply's tokens (None when none were recorded, or the record is damaged)
    and the sampling settings it was written with (the defaults when unreadable)."""
    settings = GenerationSettings()
    try:
        settings = settings.with_record(message.settings or {})
        settings.check()
    except (VicunaError, TypeError, ValueError):
        settings = GenerationSettings()
    return saved_tokens(message.tokens), settings


class MessageView(Vertical, can_focus=True):
    """One message.  Focus it (Tab / Shift+Tab / click) to act on it: copy, edit, delete,
    and Left / Right for its branches.  Text typed while it has focus goes to the input
    (``Typed``), never nowhere; Esc takes focus back to the input."""

    BINDINGS = [
        Binding("left", "step(-1)", "Previous branch (token view: previous token)", show=False),
        Binding("right", "step(1)", "Next branch (token view: next token)", show=False),
        Binding("ctrl+left", "jump(-1)", "Previous unlikely token", show=False),
        Binding("ctrl+right", "jump(1)", "Next unlikely token", show=False),
    ]

    class Typed(Message):
        """A printable key pressed while a message had focus: it belongs in the input."""

        def __init__(self, character: str) -> None:
            super().__init__()
            self.character = character

    class BranchFromToken(Message):
        """A digit pressed on a focused token (token view): branch from there with that
        alternative."""

        def __init__(self, view: MessageView, at: int, token: str) -> None:
            super().__init__()
            self.view = view
            self.at = at
            self.token = token

    def __init__(self, role: str, text: str = "", *, label: str = "") -> None:
        super().__init__(classes=f"message {role}")
        self.role = role
        self.text = terminal_safe(text)
        self.label = label or ("You" if role == "user" else "Assistant")
        self.branch = (1, 1)  # which of how many siblings it is
        self.stream: MarkdownStream | None = None
        # The token view: the reply as saved (its tokens, read only when they are
        # shown), and ``token_text`` while they are.
        self.saved: SavedMessage | None = None
        self.token_text: TokenText | None = None

    FOCUS_TITLE = "focused · ←/→ branch · F6 copy · F7 edit · F8 delete · Esc back to typing"
    TOKEN_TITLE = "tokens · ←/→ move · Ctrl+←/→ unlikely · 1-5 branch from here · Esc back"

    def on_focus(self) -> None:
        self.border_title = self.TOKEN_TITLE if self.token_text else self.FOCUS_TITLE
        self._show_detail()

    def on_blur(self) -> None:
        self.border_title = None
        self._show_detail()

    def on_key(self, event: events.Key) -> None:
        if self.token_text is not None and event.character and event.character in "12345":
            event.stop()
            event.prevent_default()
            self._pick(int(event.character))
            return
        if event.is_printable and event.character and event.key != "question_mark":
            event.stop()
            event.prevent_default()
            self.post_message(self.Typed(event.character))

    async def action_step(self, step: int) -> None:
        """←/→: along the tokens in the token view, else to the previous/next branch."""
        if self.token_text is not None:
            self.token_text.move(step)
            self._show_detail()
        else:
            await self.run_action("screen.branch_previous" if step < 0 else "screen.branch_next")

    def action_jump(self, step: int) -> None:
        if self.token_text is None:
            return
        if not self.token_text.jump(step):
            where = "after" if step > 0 else "before"
            self.notify(f"No token under 10% {where} this one.")
        self._show_detail()

    def _pick(self, number: int) -> None:
        assert self.token_text is not None
        picks = self.token_text.alternatives()
        if not picks:
            self.notify("Move to a token first (←/→), then pick one of its alternatives.")
            return
        if number > len(picks):
            self.notify(f"This token has {len(picks)} alternatives recorded.")
            return
        self.post_message(self.BranchFromToken(self, self.token_text.cursor.at, picks[number - 1]))

    # -- the token view --------------------------------------------------------------------

    async def show_tokens(self, shown: bool) -> None:
        """The reply as its marked tokens (``shown``), or as Markdown."""
        if self.role != "assistant" or not self.is_mounted:
            return
        for old in self.query(".tokens, .token-detail"):
            await old.remove()
        self.token_text = None
        self.markdown.display = not shown
        if shown:
            detail = Static(plain(""), classes="token-detail")
            tokens, settings = reply_tokens(self.saved) if self.saved else (None, None)
            if tokens and settings:
                self.token_text = TokenText(shown_tokens(tokens, self.text), settings)
                await self.mount(self.token_text, detail, before=self.query_one(".meta"))
            else:
                await self.mount(
                    Static(plain(NOT_RECORDED), classes="tokens none"),
                    detail,
                    before=self.query_one(".meta"),
                )
        if self.has_focus:
            self.on_focus()
        self._show_detail()

    def _show_detail(self) -> None:
        for detail in self.query(".token-detail").results(Static):
            text = self.token_text.detail() if self.token_text is not None else ""
            detail.update(plain(text))
            detail.display = bool(text) and self.has_focus
            if detail.display:  # the alternatives stay in sight under a long reply
                self.call_after_refresh(detail.scroll_visible, animate=False)

    def compose(self) -> ComposeResult:
        yield Static(plain(self._heading()), classes="role")
        if self.role == "user":
            yield Static(plain(self.text), classes="body")
        else:
            from textual.widgets import Markdown

            yield Markdown(self.text, open_links=False, classes="body")
        yield Static(plain(""), classes="meta")

    @property
    def label_text(self) -> str:
        """The heading shown: who wrote it, and which branch it is."""
        return self._heading()

    def _heading(self) -> str:
        which, count = self.branch
        return f"{self.label}   ‹ {which}/{count} ›" if count > 1 else self.label

    def set_label(self, label: str) -> None:
        self.label = label
        if self.is_mounted:
            self.query_one(".role", Static).update(plain(self._heading()))

    def set_branch(self, which: int, count: int) -> None:
        """Mark the message as branch ``which`` of ``count`` (nothing shown for one)."""
        if self.branch != (which, count):
            self.branch = (which, count)
            self.set_label(self.label)

    @property
    def markdown(self) -> Markdown:
        from textual.widgets import Markdown

        return self.query_one(Markdown)

    def start_stream(self) -> None:
        self.add_class("streaming")
        self.stream = self.markdown.get_stream(self.markdown)

    def add_text(self, delta: str) -> str:
        """Record streamed text without drawing it yet; returns it made terminal-safe."""
        delta = terminal_safe(delta)
        self.text += delta
        return delta

    async def write(self, delta: str) -> None:
        """Add streamed text and draw it through MarkdownStream."""
        delta = self.add_text(delta)
        if self.stream is not None:
            await self.stream.write(delta)

    async def finish(self, text: str | None = None, meta: str = "") -> None:
        """End streaming with one full update (this also renders code fences properly)."""
        if self.stream is not None:
            await self.stream.stop()
            self.stream = None
        if text is not None:
            self.text = terminal_safe(text)
        self.remove_class("streaming")
        if self.role == "assistant":
            await self.markdown.update(self.text)
        self.set_meta(meta)

    def set_meta(self, meta: str) -> None:
        static = self.query_one(".meta", Static)
        static.update(plain(meta))
        static.display = bool(meta)


class Welcome(Static):
    """The first screen of an empty chat: what is loading, and how to start."""


HOW_TO_START = "Type a message and press Enter to send it · F1 help · Ctrl+P every command"


class Transcript(VerticalScroll):
    """The chat.  It stays pinned to the bottom unless the user scrolls up."""

    def __init__(self, *, id: str | None = None, how_to: str = HOW_TO_START) -> None:
        super().__init__(id=id)
        self.how_to = how_to
        self.token_mode = False  # replies shown as their marked tokens (the token view)

    async def set_token_mode(self, on: bool) -> None:
        self.token_mode = on
        for view in self.views:
            await view.show_tokens(on)

    async def reply_finished(self, view: MessageView, message: SavedMessage) -> None:
        """A reply was written and saved as ``message``: its tokens for the token view."""
        view.saved = message
        if self.token_mode:
            await view.show_tokens(True)

    def compose(self) -> ComposeResult:
        yield Welcome(plain(self.how_to), id="welcome")

    def on_mount(self) -> None:
        self.anchor()

    def set_welcome(self, status: str, *, how_to: str | None = None) -> None:
        """The empty chat's text: ``status`` (e.g. what is loading) and how to start
        (``how_to``, else the transcript's own; empty for none)."""
        welcome = self.query("#welcome")
        how = self.how_to if how_to is None else how_to
        if welcome:
            welcome.first(Static).update(plain(f"{status}\n\n{how}" if how else status))

    def reset_welcome(self) -> None:
        """The empty chat's text back to how to start."""
        for welcome in self.query("#welcome").results(Static):
            welcome.update(plain(self.how_to))

    def welcome_text(self) -> str:
        return "".join(str(w.render()) for w in self.query("#welcome").results(Static))

    def _show_welcome(self, shown: bool) -> None:
        for welcome in self.query("#welcome"):
            welcome.display = shown

    @property
    def views(self) -> list[MessageView]:
        return list(self.query(MessageView))

    async def add(
        self, role: str, text: str = "", *, label: str = "", meta: str = ""
    ) -> MessageView:
        view = MessageView(role, text, label=label)
        self._show_welcome(False)
        await self.mount(view)
        view.set_meta(meta)
        self.anchor()  # a new message brings the view back to the bottom
        return view

    async def show(self, messages: list[SavedMessage], model_label: str = "") -> None:
        await self.remove_children(MessageView)
        self._show_welcome(not messages)
        views = [
            MessageView(
                m.role,
                m.content,
                label=""
                if m.role == "user"
                else (f"Assistant · {m.model}" if m.model else model_label),
            )
            for m in messages
        ]
        if views:
            await self.mount_all(views)
        for view, message in zip(views, messages, strict=True):
            if message.role == "assistant":
                view.set_meta(describe_stats(message))
                view.saved = message
                if self.token_mode:
                    await view.show_tokens(True)
            else:
                view.set_meta("")
        self.anchor()

    async def drop_last(self, count: int = 1) -> None:
        views = self.views
        for view in views[len(views) - count :]:
            await view.remove()
        self._show_welcome(not self.views)
