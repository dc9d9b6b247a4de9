"""The line-based chat loop shared by --style simple, pipe mode and --style rich.

FastChat-compatible commands: !!exit, !!reset, !!remove, !!regen, !!save FILE,
!!load FILE (FastChat's JSON), plus !!help.  An empty line prompts again; EOF exits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from vicuna_tui import formats, writable
from vicuna_tui.engine.constraints import ConstraintError, OutputConstraint, check_reply
from vicuna_tui.engine.events import (
    FINISH_CANCELLED,
    ChatRequest,
    ReplyDone,
    ReplyFailed,
    ReplyStats,
    TokenLogprob,
    drafts_text,
    rate_text,
    speedup_text,
)
from vicuna_tui.engine.templates import TEMPLATE_CHOICES
from vicuna_tui.errors import VicunaError
from vicuna_tui.frontends.driver import Driver, Hangup, describe_failure
from vicuna_tui.session import ChatSession
from vicuna_tui.store import Conversation, now
from vicuna_tui.textsafe import json_line, json_text, terminal_safe

HELP = """commands:
  !!exit          quit (so does Ctrl-D)
  !!reset         start a new conversation
  !!remove        remove the last message and its reply
  !!regen         regenerate the last reply (the old one stays, as a branch)
  !!branches      the branches of the last reply (or of the last message)
  !!branch N      show branch N of it instead
  !!save FILE [--force]  save the conversation as FastChat JSON (--force replaces a file)
  !!load FILE     load a conversation (FastChat, ShareGPT or vicuna-tui JSON)
  !!help          this list
Ctrl-C stops a reply and keeps what was written."""


class Renderer(Protocol):
    def read(self) -> str: ...

    def reply_start(self) -> None: ...

    def reply_delta(self, text: str) -> None: ...

    def reply_end(self, done: ReplyDone) -> None: ...

    def info(self, text: str) -> None: ...

    def show_message(self, role: str, text: str) -> None: ...


def stats_line(stats: ReplyStats, finish: str) -> str:
    parts = []
    if stats.prompt_tokens:  # a remote server may not report it
        parts.append(f"{stats.prompt_tokens} prompt tokens ({stats.cached_tokens} cached)")
    parts.append(f"{stats.new_tokens} new")

    if stats.time_to_first_token is not None:
        parts.append(f"first token {stats.time_to_first_token:.2f} s")
    if stats.tokens_per_second is not None:
        parts.append(rate_text(stats.tokens_per_second))
    if stats.threads is not None:
        parts.append(f"{stats.threads} thread{'' if stats.threads == 1 else 's'}")
    if stats.prompt_cache_bytes is not None:
        parts.append(f"prompt cache {stats.prompt_cache_bytes / 2**20:.0f} MiB")
    if stats.speculation is not None and stats.drafted is not None:
        parts.append(f"{stats.speculation}: {drafts_text(stats.drafted, stats.accepted or 0)}")
        gained = speedup_text(stats)
        if gained:
            parts.append(gained)
    if stats.dropped_turns:
        parts.append(f"{stats.dropped_turns} old turn(s) dropped to fit the context")
    parts.append(finish)
    return "[stats] " + " · ".join(parts)


def reply_record(
    prompt: str, result: ReplyDone | ReplyFailed, session: ChatSession
) -> dict[str, Any]:
    info = session.model_info
    base = {
        "prompt": prompt,
        "model": info.name if info else None,
        "conversation_id": session.conversation.id if session.conversation else None,
    }
    if isinstance(result, ReplyFailed):
        return {
            **base,
            "text": result.partial_text,
            "finish_reason": "error",
            "error": result.error.message,
        }
    stats = result.stats
    logprobs = (
        {}
        if result.tokens is None
        else {"logprobs": {"content": [t.record() for t in result.tokens]}}
    )
    return {
        **base,
        "text": result.text,
        "finish_reason": result.finish_reason,
        **logprobs,
        "stats": {
            "prompt_tokens": stats.prompt_tokens,
            "cached_tokens": stats.cached_tokens,
            "new_tokens": stats.new_tokens,
            "time_to_first_token": stats.time_to_first_token,
            "tokens_per_second": stats.tokens_per_second,
            "total_time": stats.total_time,
            "seed": stats.seed,
            "dropped_turns": stats.dropped_turns,
            "threads": stats.threads,
            "prompt_cache_bytes": stats.prompt_cache_bytes,
            # speculative decoding: tokens drafted, and kept of them (None: it did not)
            "drafted": stats.drafted,
            "accepted": stats.accepted,
            "speculation": stats.speculation,
            # the last reply written without it, to measure it against (None: none yet)
            "baseline_tokens_per_second": stats.baseline_rate,
        },
    }


def kept_spans_text(spans: Sequence[str], shown: int = 60) -> str:
    """--debug: the reply's text that kept drafts wrote, each run of kept tokens
    quoted (the longer ones cut to ``shown`` characters)."""
    quoted = []
    for span in spans:
        text = span if len(span) <= shown else span[: shown - 1] + "…"
        quoted.append(repr(text))
    return f"[drafts kept] {len(spans)} run(s): " + " · ".join(quoted)


def least_likely(tokens: Sequence[TokenLogprob], count: int = 3) -> str:
    """The reply's least likely tokens, each with what the model found likelier."""
    parts = []
    for token in sorted(tokens, key=lambda t: t.logprob)[:count]:
        others = [c for c in token.top if c.token != token.token][:2]
        instead = ", ".join(f"{c.token!r} {math.exp(c.logprob):.0%}" for c in others)
        parts.append(
            f"{token.token!r} {math.exp(token.logprob):.0%}" + (f" ({instead})" if instead else "")
        )
    return "[least likely] " + "; ".join(parts)


def _unprinted(text: str) -> None:
    """Where the deltas of a reply that is checked before printing go."""


class PlainRenderer:
    """--style simple on a terminal, and pipe mode (no prompts, replies only)."""

    def __init__(
        self,
        stdin: TextIO,
        stdout: TextIO,
        stderr: TextIO,
        *,
        interactive: bool,
        multiline: bool = False,
        json_mode: bool = False,
    ) -> None:
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.interactive = interactive
        self.multiline = multiline
        self.json_mode = json_mode

    def _input(self, prompt: str) -> str:
        if self.interactive:
            return input(prompt)
        line = self.stdin.readline()
        if line == "":
            raise EOFError
        return line[:-1] if line.endswith("\n") else line

    def read(self) -> str:
        if not self.multiline:
            return self._input("USER: ")
        lines = [self._input("USER [Ctrl-D on an empty line to send]: ")]
        while True:
            try:
                lines.append(self._input(""))
            except EOFError:
                break
        return "\n".join(lines)

    def reply_start(self) -> None:
        if self.interactive:
            self.stdout.write("ASSISTANT: ")
            self.stdout.flush()

    def reply_delta(self, text: str) -> None:
        if not self.json_mode:
            self.stdout.write(terminal_safe(text))
            self.stdout.flush()

    def reply_end(self, done: ReplyDone) -> None:
        if self.json_mode:
            return
        if done.finish_reason == FINISH_CANCELLED and self.interactive:
            self.stdout.write(" [cancelled]")
        self.stdout.write("\n")
        self.stdout.flush()

    def info(self, text: str) -> None:
        target = self.stdout if self.interactive else self.stderr
        target.write(terminal_safe(text) + "\n")
        target.flush()

    def show_message(self, role: str, text: str) -> None:
        label = "USER" if role == "user" else "ASSISTANT"
        self.info(f"{label}: {text}")


@dataclass(eq=False)
class LineChat:
    session: ChatSession
    driver: Driver
    renderer: Renderer
    _: KW_ONLY
    stderr: TextIO
    json_out: TextIO | None = None  # where each reply's JSON record goes (--json)
    debug: bool = False
    stats: bool = False
    failures: int = field(default=0, init=False)

    def diag(self, text: str) -> None:
        self.stderr.write(terminal_safe(text) + "\n")
        self.stderr.flush()

    def run(self) -> int:
        while True:
            try:
                text = self.renderer.read()
            except EOFError:
                break
            except Hangup:
                break
            except KeyboardInterrupt:
                self.renderer.info("\n(Ctrl-D or !!exit to quit)")
                continue
            if not text.strip():
                continue
            if text.startswith("!!"):
                if not self.command(text.strip()):
                    break
                continue
            self.respond(self.session.add_user(text), text)
            if self.driver.hung_up:
                break
        return 1 if self.failures and self.json_out is not None else 0

    def respond(self, request: ChatRequest, prompt: str = "") -> ReplyDone | ReplyFailed:
        if self.debug:
            try:
                preview = self.driver.preview(request)
                self.diag(
                    f"[template] {self.session.resolved_template}  "
                    f"[prompt: {preview.tokens} tokens]\n{preview.text}"
                )
            except VicunaError as exc:
                self.diag(describe_failure(exc))
        self.renderer.reply_start()
        constraint = request.constraint
        # A reply held to a schema is printed once it is checked, never in part.
        sink = self.renderer.reply_delta if constraint is None else _unprinted
        result = self.driver.ask(request, sink)
        self.session.record_result(result)  # saved as it came, whatever the check says
        if constraint is not None and isinstance(result, ReplyDone):
            result = self._checked(constraint, result)
        if isinstance(result, ReplyDone):
            self.renderer.reply_end(result)
            if self.debug or self.stats:
                self.diag(stats_line(result.stats, result.finish_reason))
            if self.debug and result.tokens:
                self.diag(least_likely(result.tokens))
            if self.debug and result.stats.kept_spans:
                self.diag(kept_spans_text(result.stats.kept_spans))
        else:
            self.failures += 1
            self.renderer.reply_end(
                ReplyDone(result.request_id, result.partial_text, "error", ReplyStats())
            )
            self.diag(describe_failure(result.error))
        if self.json_out is not None:
            self.json_out.write(json_line(reply_record(prompt, result, self.session)) + "\n")
            self.json_out.flush()
        return result

    def _checked(self, constraint: OutputConstraint, done: ReplyDone) -> ReplyDone | ReplyFailed:
        """The reply, printed now that it holds to ``constraint``; else a failure that
        says where it does not (nothing of it printed)."""
        if done.finish_reason == FINISH_CANCELLED:
            return done
        try:
            check_reply(constraint, done.text, done.finish_reason)
        except ConstraintError as exc:
            return ReplyFailed(done.request_id, exc, done.text)
        self.renderer.reply_delta(done.text)
        return done

    def _conversation_snapshot(self) -> Conversation:
        s = self.session
        return Conversation(
            id=s.conversation.id if s.conversation else "",
            title=s.title,
            created_at=now(),
            updated_at=now(),
            template=s.resolved_template,
            system_message=s.system_message,
            messages=list(s.messages),
        )

    def command(self, text: str) -> bool:
        """Run a !! command; False means exit."""
        name, _, arg = text.partition(" ")
        if name == "!!exit":
            return False
        run = {
            "!!help": self._help,
            "!!reset": self._reset,
            "!!remove": self._remove,
            "!!regen": self._regenerate,
            "!!branches": self._branches,
            "!!branch": self._branch,
            "!!save": self._save,
            "!!load": self._load,
        }.get(name)
        if run is None:
            self.renderer.info(f"unknown command {name}; !!help lists them")
        else:
            run(arg.strip())
        return True

    def _help(self, arg: str) -> None:
        self.renderer.info(HELP)

    def _reset(self, arg: str) -> None:
        self.renderer.info("resetting...")
        self.session.new_chat()

    def _show_all(self) -> None:
        for message in self.session.messages:
            self.renderer.show_message(message.role, message.content)

    def _remove(self, arg: str) -> None:
        if self.session.remove_last_turn():
            self.renderer.info("removed the last message.")
            self._show_all()
        else:
            self.renderer.info("no messages to remove.")

    def _regenerate(self, arg: str) -> None:
        request = self.session.regenerate()
        if request is None:
            self.renderer.info("no message to regenerate.")
            return
        self.renderer.info("regenerating the last reply...")
        self.respond(request, self.session.last_user_text() or "")

    def _last_message(self) -> tuple[int, int, int] | None:
        """The last message's index, which of its branches shows and how many there
        are; None (and says so) before any message."""
        messages = self.session.messages
        if not messages:
            self.renderer.info("no messages yet.")
            return None
        index = len(messages) - 1
        return (index, *self.session.branches.branch_at(index))

    def _branches(self, arg: str) -> None:
        last = self._last_message()
        if last is None:
            return
        index, which, count = last
        if count == 1:
            self.renderer.info("the last message has no other branches (!!regen makes one).")
            return
        for number, sibling in enumerate(self.session.branches.siblings_at(index), start=1):
            mark = "*" if number == which else " "
            text = " ".join(sibling.content.split())
            self.renderer.info(f"{mark} {number}: {text[:70]}")
        self.renderer.info(f"showing {which} of {count}; !!branch N shows another")

    def _branch(self, arg: str) -> None:
        last = self._last_message()
        if last is None:
            return
        index, _, count = last
        if not arg.isdigit() or not 1 <= int(arg) <= count:
            self.renderer.info(f"!!branch needs a number from 1 to {count} (see !!branches)")
            return
        self.session.choose_branch(index, int(arg))
        self.renderer.info(f"showing branch {arg} of {count}:")
        self._show_all()

    def _save(self, arg: str) -> None:
        force = arg.endswith(" --force") or arg == "--force"
        arg = arg.removesuffix("--force").strip()
        if not arg:
            self.renderer.info("usage: !!save FILE [--force]")
            return
        path = Path(arg if "." in Path(arg).name else arg + ".json").expanduser()
        refused = writable.output_problem(path, replace=force, example="chat.json")
        if refused:
            problem, fix = refused
            fix = fix.replace("add --force", f"!!save {arg} --force")
            self.renderer.info(f"not saved: {problem} ({fix})")
            return
        text = json_text(formats.to_fastchat(self._conversation_snapshot())) + "\n"
        try:
            formats.write_output(path, text, replace=force)
        except OSError as exc:
            self.renderer.info(f"not saved: {writable.os_error_problem(exc, path)}")
        else:
            self.renderer.info(f"saved to {path}")

    def _load(self, arg: str) -> None:
        if not arg:
            self.renderer.info("usage: !!load FILE")
            return
        path = Path(arg).expanduser()
        if not path.exists() and Path(arg + ".json").expanduser().exists():
            path = Path(arg + ".json").expanduser()
        try:
            conv, messages = formats.read_conversation(path)
        except VicunaError as exc:
            self.renderer.info(describe_failure(exc))
            return
        self.session.import_messages([(m.role, m.content) for m in messages], title=conv.title)
        if conv.template in TEMPLATE_CHOICES:
            self.session.update_settings(template=conv.template)
        if conv.system_message is not None:
            self.session.update_settings(system_message=conv.system_message)
        self.renderer.info(f"loaded {len(messages)} messages from {path}")
        self._show_all()
