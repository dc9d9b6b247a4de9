"""One judge model, asked for verdicts: the prompt's system message, greedy unless told
otherwise, and a second ask when no verdict can be read (or the server failed)."""

from __future__ import annotations

import dataclasses

from vicuna_tui import runtime
from vicuna_tui.commands.startup import ask_turns
from vicuna_tui.engine.events import FINISH_CANCELLED, ModelInfo, ReplyDone, ReplyFailed
from vicuna_tui.engine.settings import GenerationSettings
from vicuna_tui.evaluation.judge_prompts import JudgePrompt
from vicuna_tui.evaluation.verdicts import format_reminder, read_verdict
from vicuna_tui.frontends.driver import Driver
from vicuna_tui.session import ChatSession

ERROR_TEXT = "$ERROR$"  # FastChat's mark for a judgment that never came


class Stopped(Exception):
    """The run was stopped (Ctrl-C) while the judge was answering."""


@dataclasses.dataclass
class JudgeWorker:
    driver: Driver
    resolved: runtime.Resolved
    info: ModelInfo
    generation: GenerationSettings
    retried: int = 0  # verdicts asked for a second time

    def verdict(self, prompt: JudgePrompt, user_prompt: str) -> tuple[str, float | str | None]:
        """The judge's reply to ``user_prompt`` and the verdict read from it (None when
        none could be read, even when asked again)."""
        session = self._session(prompt)
        text, ok = self._ask(session, user_prompt)
        if not ok:  # the server failed: once more, afresh
            self.retried += 1
            session = self._session(prompt)
            again, ok = self._ask(session, user_prompt)
            text = f"{text}\n\n[asked again]\n{again}"
            if not ok:
                return text, None
        verdict = read_verdict(prompt.output_format, text)
        if verdict is None:
            self.retried += 1
            again, ok = self._ask(session, format_reminder(prompt.output_format))
            text = f"{text}\n\n[asked again for the verdict]\n{again}"
            verdict = read_verdict(prompt.output_format, again) if ok else None
        return text, verdict

    def _session(self, prompt: JudgePrompt) -> ChatSession:
        session = runtime.new_session(self.resolved, None)
        session.system_message = prompt.system_prompt
        session.set_model(self.info)
        session.generation = self.generation
        return session

    def _ask(self, session: ChatSession, text: str) -> tuple[str, bool]:
        (result,) = ask_turns(self.driver, session, [text])
        if isinstance(result, ReplyFailed):
            return f"{ERROR_TEXT} {result.error.message}", False
        assert isinstance(result, ReplyDone)
        if result.finish_reason == FINISH_CANCELLED or self.driver.hung_up:
            raise Stopped
        return result.text, True
