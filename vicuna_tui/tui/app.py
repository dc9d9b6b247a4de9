"""The Textual app: small on purpose.  The chat lives in the ``chat`` package, which
reaches the app only through ``chat.host.ChatHost``."""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from textual.app import SystemCommand
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from vicuna_tui import config as config_mod
from vicuna_tui import runtime
from vicuna_tui.arena.fit import Fit, check_fit, share_cores
from vicuna_tui.arena.sides import typed_side
from vicuna_tui.engine.backend import Backend
from vicuna_tui.engine.events import EngineEvent, ReplyDelta
from vicuna_tui.engine.settings import LoadSettings, RemoteSettings
from vicuna_tui.engine.worker import EngineThread
from vicuna_tui.errors import VicunaError
from vicuna_tui.keymap import ACTIONS, human_key
from vicuna_tui.store import Store
from vicuna_tui.tui.chat import ChatScreen
from vicuna_tui.tui.chat.host import ChatHost
from vicuna_tui.tui.literal import LiteralNotifications
from vicuna_tui.tui.messages import EngineMessage, MemoryMeasured
from vicuna_tui.tui.reply_inbox import ReplyInbox
from vicuna_tui.tui.screens.arena_setup import ArenaChoice
from vicuna_tui.tui.screens.dialogs import ConfirmScreen
from vicuna_tui.tui.store_calls import StoreCalls

BackendFactory = Callable[[LoadSettings], Backend]


class VicunaApp(LiteralNotifications):
    CSS_PATH = "styles/app.tcss"
    TITLE = "vicuna-tui"
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        resolved: runtime.Resolved,
        store: Store | None,
        *,
        conversation_id: str | None = None,
        backend_factory: BackendFactory | None = None,
        remote_factory: Callable[[RemoteSettings], Backend] | None = None,
        memory_probe: Callable[[], int | tuple[int, int]] | None = None,
        debug: bool = False,
        replay: bool = False,
        reuse_seeds: bool = True,
        not_saving: str | None = None,
        not_saving_hint: str | None = None,
    ) -> None:
        super().__init__()
        self.not_saving_hint = not_saving_hint
        self.resolved = resolved
        self.memory_probe = memory_probe
        self.engine_debug = debug
        self.backend_factory = backend_factory or self._default_backend
        self.remote_factory = remote_factory or self._default_remote
        self.engine = EngineThread(self._emit, debug=debug)
        self.replies = ReplyInbox()  # the chat's reply text, engine thread to UI thread
        self.keys = resolved.config.key_bindings()
        self._config_warned = False
        self._asking_to_quit = False  # the "unsent message" question is showing
        self._theme_ready = False
        # The database is used on its own thread only (StoreCalls), never on this one.
        self.store_calls = StoreCalls(store) if store is not None else None
        self.session = runtime.new_session(
            resolved,
            None,
            warn=lambda text: self.notify(text, severity="warning", timeout=8),
            not_saving=not_saving,
            writer=self.store_calls.writer(lambda: self.chat)
            if self.store_calls is not None
            else None,
        )
        self._settings_timer: Timer | None = None
        self._settings_pending: dict[str, Any] = {}
        self.chat = ChatScreen(
            self.session,
            self,
            keys=self.keys,
            conversation_id=conversation_id,
            replay=replay,
            reuse_seeds=reuse_seeds,
        )

    def _default_backend(self, load: LoadSettings) -> Backend:
        # The model runs in its own process, so that drawing never holds up its decode
        # loop (one GIL for both cost 10% of the tokens/s); see engine/process.py.
        from vicuna_tui.engine.factory import make_backend

        return make_backend(load, own_process=True, debug=self.engine_debug)

    def _default_remote(self, remote: RemoteSettings) -> Backend:
        from vicuna_tui.engine.factory import make_backend

        return make_backend(LoadSettings(), remote)

    # -- the engine thread ---------------------------------------------------------------

    def _emit(self, event: EngineEvent) -> None:
        """Called on the engine thread: only hands the event to the UI thread."""
        if isinstance(event, ReplyDelta):
            # Reply text is not posted token by token: the chat screen takes it a few
            # times a second, so a fast model never floods the UI thread.
            self.replies.put(event)
            return
        self.chat.post_message(EngineMessage(event))

    def load_model(self, load: LoadSettings, remote: RemoteSettings | None = None) -> None:
        """Load a local model, or connect to ``remote`` when given."""
        self.engine.start()
        if remote is not None:
            self.engine.load(self.remote_factory(remote))
        else:
            self.engine.load(self.backend_factory(load))

    def measure_memory(self) -> None:
        """Ask the engine thread what the model holds; a MemoryMeasured answers."""

        def measure(backend: Backend | None) -> int | None:
            return backend.memory_in_use() if backend is not None else None

        def reply(value: int | None) -> None:
            self.chat.post_message(MemoryMeasured(value))

        self.engine.call(measure, reply)

    # -- lifecycle -------------------------------------------------------------------------

    def on_mount(self) -> None:
        cfg = self.resolved.config
        if self.resolved.config.key_bindings() != {a.action: a.key for a in ACTIONS}:
            self.set_keymap({k: v for k, v in cfg.keys.items()})
        if self.resolved.theme:
            if self.resolved.theme in self.available_themes:
                self.theme = self.resolved.theme
            else:
                self.notify(
                    f"Unknown theme {self.resolved.theme!r} in config.toml; using the default.",
                    severity="warning",
                )
        self._theme_ready = True
        for warning in self.resolved.warnings:
            self.notify(warning, severity="error", timeout=12)
        # SIGTERM and SIGHUP (the terminal closed) end the app as quitting does: the
        # reply in flight is kept and saved, and the model's process is stopped.
        self.end_on_signals()
        self.push_screen(self.chat)

    def end_now(self) -> None:
        self.chat.replies.keep_partial()  # the reply in progress, saved as it stands
        self.exit(0)

    def watch_theme(self, theme: str) -> None:
        if self._theme_ready:
            self.save_settings({"theme": theme})

    async def action_quit(self) -> None:
        """Quit; over an unsent draft it asks first (Ctrl+Q again, or y, quits)."""
        draft = self.chat.prompt.text.strip() if self.chat.is_mounted else ""
        if draft and not self._asking_to_quit:
            self._asking_to_quit = True

            def answered(quit_anyway: bool | None) -> None:
                self._asking_to_quit = False
                if quit_anyway:
                    self.end_now()

            lines = draft.count("\n") + 1
            what = f"{len(draft)} characters" + (f", {lines} lines" if lines > 1 else "")
            self.push_screen(
                ConfirmScreen(
                    f"Quit with an unsent message in the input ({what})? It is not saved. "
                    "Ctrl+Q again or y quits; Esc goes back to it.",
                    yes="Quit",
                ),
                answered,
            )
            return
        self.end_now()

    def on_unmount(self) -> None:
        if self._settings_timer is not None:
            self._settings_timer.stop()
        self.finish()
        self.exit_watch.ended()

    def finish(self) -> None:
        self.engine.shutdown(timeout=5)
        if self._settings_pending:  # what was typed in the last half second, now
            _write_config(dict(self._settings_pending), lambda exc: None)
        if self.store_calls is not None:
            self.store_calls.close()  # the last reply reaches the disk

    SETTINGS_SETTLE = 0.6  # seconds without an edit before config.toml is written

    def save_settings(self, values: dict[str, Any]) -> None:
        """Remember settings changed in the UI in config.toml (never a broken one), once
        editing settles, on a worker thread."""
        cfg = self.resolved.config
        if cfg.error is not None:
            if not self._config_warned:
                self._config_warned = True
                self.notify(f"Not saving settings: {cfg.error.message}", severity="warning")
            return
        self._settings_pending.update(
            {k: v for k, v in values.items() if k in config_mod.SETTING_FIELDS}
        )
        if self._settings_timer is not None:
            self._settings_timer.stop()
        self._settings_timer = self.set_timer(self.SETTINGS_SETTLE, self._write_settings)

    def _write_settings(self) -> None:
        self._settings_timer = None
        values, self._settings_pending = self._settings_pending, {}
        if values:
            self.in_thread(
                functools.partial(_write_config, values, self._settings_failed),
                "saving settings to config.toml",
            )

    def in_thread(self, work: Callable[[], None], what: str) -> None:
        """Run ``work`` on a worker thread; should it fail, the app goes on and the
        failure is shown (``on_worker_state_changed``), never a crash."""
        self.run_worker(work, name=what, thread=True, exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every worker's failure comes here, and is shown once."""
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        text = (
            error.inline() if isinstance(error, VicunaError) else f"{type(error).__name__}: {error}"
        )
        self.notify(f"Failed while {event.worker.name}: {text}", severity="error", timeout=12)

    def _settings_failed(self, exc: Exception) -> None:
        self.call_from_thread(self.notify, f"Could not save settings: {exc}", severity="warning")

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if not isinstance(screen, ChatScreen):
            return
        yield SystemCommand(
            "Arena", "two models side by side, blind votes, a leaderboard", self.show_arena_setup
        )
        yield SystemCommand(
            "Arena leaderboard", "ratings from every arena vote", self.show_arena_results
        )
        yield SystemCommand(
            "Evaluation results",
            "the judge's scores and win rates, drawn; a cell opens its questions",
            self.show_evaluations,
        )
        for action in ACTIONS:
            if not action.binding:
                continue  # the input's own keys (send, newline, focus): not commands
            yield SystemCommand(
                action.description,
                f"Key: {human_key(self.keys.get(action.action, action.key))}",
                lambda name=action.action: self._run_chat_action(name),
            )

    def show_evaluations(self) -> None:
        from vicuna_tui.tui.screens.evaluation import EvaluationScreen

        self.push_screen(EvaluationScreen(self.store_calls))

    def show_arena_results(self) -> None:
        from vicuna_tui.tui.screens.arena_results import ArenaResultsScreen

        self.push_screen(ArenaResultsScreen(self.store_calls))

    def show_arena_setup(self) -> None:
        from vicuna_tui.tui.screens.arena_setup import ArenaSetupScreen

        load, info = self.session.load, self.session.model_info
        first = load.model_path or (info.path if info is not None else "")  # the default's
        self.push_screen(ArenaSetupScreen(first, load.backend), self._arena_chosen)

    def _arena_chosen(self, choice: ArenaChoice | None) -> None:
        if choice is None:
            return
        try:
            sides = [
                runtime.resolve(
                    typed_side(text, self.resolved.config, engine), cfg=self.resolved.config
                )
                for text, engine in (
                    (choice.first, choice.first_engine),
                    (choice.second, choice.second_engine),
                )
            ]
        except VicunaError as exc:
            self.notify(exc.inline(), severity="error")
            return
        sides = share_cores(
            [dataclasses.replace(s, generation=self.session.generation) for s in sides]
        )
        self.in_thread(
            functools.partial(self._check_arena_fit, sides, choice),
            "checking that the arena's models fit",
        )

    def _check_arena_fit(self, sides: list[runtime.Resolved], choice: ArenaChoice) -> None:
        """A worker thread: the models' files are looked at here, not on the UI thread."""
        fit = check_fit([s.load if s.remote is None else None for s in sides])
        self.call_from_thread(self._open_arena, sides, choice, fit)

    def _open_arena(self, sides: list[runtime.Resolved], choice: ArenaChoice, fit: Fit) -> None:
        from vicuna_tui.tui.arena.screen import ArenaScreen

        def backend(side: runtime.Resolved) -> Backend:  # as this app makes its own
            if side.remote is not None:
                return self.remote_factory(side.remote)
            return self.backend_factory(side.load)

        def start(one_at_a_time: bool) -> None:
            self.push_screen(
                ArenaScreen(
                    sides,
                    backend,
                    self.store_calls,
                    blind=choice.blind,
                    one_at_a_time=one_at_a_time,
                    debug=self.engine_debug,
                    settings={"given": [choice.first, choice.second]},
                    not_saving=self.session.not_saving,
                ),
                lambda _: self.chat.sidebar.reload(),  # it lists the new arena chats
            )

        if fit.fits:
            start(False)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                start(True)

        self.push_screen(
            ConfirmScreen(
                f"The two models may not fit in memory at once: {fit.describe()}. "
                "Run them one after the other (each loads for its turn)?",
                yes="One at a time",
            ),
            answered,
        )

    def run_chat(self) -> int:
        """Run the TUI until the user quits.  (Textual draws on stderr's terminal;
        Python-level output from libraries is captured by Textual meanwhile.)"""
        self.run()
        return self.return_code or 0

    async def _run_chat_action(self, name: str) -> None:
        await self.chat.run_action(name)


_CONFIG_LOCK = threading.Lock()


def _write_config(values: dict[str, Any], failed: Callable[[Exception], None]) -> None:
    """Write settings into config.toml (a worker thread; one write at a time)."""
    with _CONFIG_LOCK:
        try:
            config_mod.set_values(values)
        except Exception as exc:  # noqa: BLE001 - a full disk, a file changed by hand: told
            failed(exc)


if TYPE_CHECKING:  # the app is what the chat screen's host Protocol asks for

    def _hosts(app: VicunaApp) -> ChatHost:
        return app
