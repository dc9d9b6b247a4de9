"""One judge model, asked for verdicts: the prompt's system message, greedy unless told
otherwise, and a second ask when no verdict can be read (or the server failed).

The judgment itself is free.  When no verdict can be read from it, the second ask is
held by a grammar to the verdict's form where the judge runs here (llama.cpp, or
transformers with xgrammar), so that it always parses (``constrain``); elsewhere it is
a plain reminder."""

from __future__ import annotations

import dataclasses

from vicuna_tui import runtime
from vicuna_tui.commands.startup import ask_turns
from vicuna_tui.engine.constraints import GRAMMAR, OutputConstraint, engines_that_hold
from vicuna_tui.engine.events import FINISH_CANCELLED, ModelInfo, ReplyDone, ReplyFailed
from vicuna_tui.engine.settings import GenerationSettings
from vicuna_tui.evaluation.judge_prompts import JudgePrompt
from vicuna_tui.evaluation.verdicts import format_reminder, read_verdict, verdict_grammar
from vicuna_tui.frontends.driver import Driver
from vicuna_tui.session import ChatSession

ERROR_TEXT = "$ERROR$"  # FastChat's mark for a judgment that never came


class Stopped(Exception):
    """The run was stopped (Ctrl-C) while the judge was answering."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    text: str  # the judgment, with any second ask
    value: float | str | None  # None when no verdict could be read
    constrained: bool  # the verdict came from an ask held to its form by a grammar


@dataclasses.dataclass
class JudgeWorker:
    driver: Driver
    resolved: runtime.Resolved
    info: ModelInfo
    generation: GenerationSettings
    constrain: bool = True  # hold the second ask to the verdict's form, where possible
    rule: str = "fastchat"  # how a verdict is read (evaluation.verdicts.RULES)
    retried: int = 0  # verdicts asked for a second time

    @property
    def can_constrain(self) -> bool:
        """Whether the judge's backend takes a grammar (llama.cpp in this process, or
        transformers with xgrammar)."""
        return (
            self.constrain
            and self.info.backend == "local"
            and self.info.engine in engines_that_hold()
        )

    def verdict(self, prompt: JudgePrompt, user_prompt: str) -> Verdict:
        """The judge's reply to ``user_prompt`` and the verdict read from it."""
        session = self._session(prompt)
        text, ok = self._ask(session, user_prompt)
        if not ok:  # the server failed: once more, afresh
            self.retried += 1
            session = self._session(prompt)
            again, ok = self._ask(session, user_prompt)
            text = f"{text}\n\n[asked again]\n{again}"
            if not ok:
                return Verdict(text, None, False)
        verdict = read_verdict(prompt.output_format, text, self.rule)
        if verdict is not None:
            return Verdict(text, verdict, False)
        self.retried += 1
        constrained = self.can_constrain
        if constrained:
            session.constraint = OutputConstraint(
                GRAMMAR, "the verdict's form", grammar=verdict_grammar(prompt.output_format)
            )
        again, ok = self._ask(session, format_reminder(prompt.output_format))
        text = f"{text}\n\n[asked again for the verdict]\n{again}"
        verdict = read_verdict(prompt.output_format, again, self.rule) if ok else None
        return Verdict(text, verdict, constrained and verdict is not None)

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
