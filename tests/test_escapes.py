"""No control sequence from stored or model text reaches a terminal, on any path.

One conversation full of OSC, CSI, DCS, C1 and BEL sequences and Rich/Textual markup
is imported, then sent through every subcommand and front end (the real CLI in a
subprocess, the rich renderer on a terminal console, the TUI).  Nothing may put an
ESC, BEL or C1 byte on stdout or stderr, markup must show literally, and the JSON
formats must keep the exact text.
"""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path

from helpers import ScriptedBackend, run_cli
from tui_helpers import make_app, ready, reply_done, run_test, send, wait_for

from vicuna_tui import formats
from vicuna_tui.store import Conversation, SavedMessage, Store, now

NASTY = (
    "start \x1b]0;pwned title\x07 osc \x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\ "
    "\x1b[2J\x1b[31;7;5mcsi\x1b[5i \x1bP+q544e\x1b\\ dcs \x9b31m c1-csi "
    "\x9d0;c1-osc\x9c \x07 bell \x85 nel [bold red]markup[/] [link=https://evil]x[/link] "
    "\u202eevil\u202c end"
)
MARKUP = "[bold red]markup[/]"
# ESC, BEL and the C1 controls: none may reach a terminal.
UNSAFE = re.compile("[\x1b\x07\x80-\x9f]")


def clean(text: str, where: str) -> None:
    found = UNSAFE.search(text)
    assert found is None, f"{where}: {found.group()!r} at {found.start()}: {text[:300]!r}"


def nasty_file(tmp_path: Path) -> Path:
    conv = Conversation(
        id="",
        title=f"Title {NASTY}",
        created_at=now(),
        updated_at=now(),
        model_name=f"model {NASTY}",
        template="vicuna_v1.1",
        system_message=f"system {NASTY}",
        messages=[
            SavedMessage("user", f"Which city is the capital of France? {NASTY}"),
            SavedMessage("assistant", f"Paris. {NASTY}", finish_reason="stop", seed=1),
        ],
    )
    path = tmp_path / "nasty.json"
    path.write_text(json.dumps(formats.to_json(conv)))
    return path


def test_nothing_from_stored_or_model_text_reaches_the_terminal(
    home: Path, tmp_path: Path, smollm_gguf: Path
) -> None:
    imported = run_cli("sessions", "import", str(nasty_file(tmp_path)))
    assert imported.returncode == 0, imported.stderr
    outputs = {"import": imported}
    with Store() as store:
        conv_id = store.latest_id()
        assert conv_id is not None
        stored = store.get(conv_id)
    assert stored.messages[1].content == f"Paris. {NASTY}"  # stored exactly

    model = ("--model-path", str(smollm_gguf), "--temperature", "0", "--max-new-tokens", "6")
    runs = {
        "list": ("sessions", "list"),
        "list --json": ("sessions", "list", "--json"),
        "show": ("sessions", "show", conv_id),
        "search": ("sessions", "search", "markup"),
        "export md": ("sessions", "export", conv_id, "--format", "md"),
        "export json": ("sessions", "export", conv_id, "--format", "json"),
        "export fastchat": ("sessions", "export", conv_id, "--format", "fastchat"),
        "export sharegpt": ("sessions", "export", conv_id, "--format", "sharegpt"),
        "rename": ("sessions", "rename", conv_id, f"Renamed {NASTY}"),
        "show renamed": ("sessions", "show", conv_id),
        "bad id": ("sessions", "show", f"zz{NASTY}"),
        "replay": ("replay", conv_id, *model),
        "resume -p": ("--resume", conv_id, "-p", f"And Spain? {NASTY}", *model),
        "-p --json": ("-p", f"Say {NASTY}", "--json", *model),
    }
    for name, args in runs.items():
        outputs[name] = run_cli(*args)
    outputs["pipe"] = run_cli(
        "--style", "simple", *model, input=f"Hello {NASTY}\n!!save {tmp_path}/saved\n"
    )
    bad_name = tmp_path / "bad \x1b]0;x\x07 name.json"
    bad_name.write_text("{ this is \x1b[2J not json")
    outputs["import error"] = run_cli("sessions", "import", str(bad_name))

    for name, result in outputs.items():
        assert "Traceback" not in result.stderr, (name, result.stderr[-1500:])
        clean(result.stdout, f"{name} stdout")
        clean(result.stderr, f"{name} stderr")
    for name in ("list", "show", "search", "resume -p", "pipe"):
        assert outputs[name].returncode == 0, (name, outputs[name].stderr)
    assert outputs["bad id"].returncode == 2 and outputs["import error"].returncode == 2
    assert MARKUP in outputs["show"].stdout  # markup is text, shown as it is
    assert MARKUP in outputs["export md"].stdout

    # The JSON formats keep every character, escaped.
    for name in ("export json", "export fastchat", "export sharegpt", "list --json"):
        text = outputs[name].stdout
        assert "\\u001b" in text and "\\u009b" in text, name
    exported = json.loads(outputs["export json"].stdout)
    assert exported["messages"][1]["content"] == f"Paris. {NASTY}"
    assert exported["conversation"]["system_message"] == f"system {NASTY}"
    one = json.loads(outputs["-p --json"].stdout)
    assert one["prompt"] == f"Say {NASTY}"

    # Files: Markdown without control characters, everything 0600.
    md_file = tmp_path / "out.md"
    assert run_cli("sessions", "export", conv_id, "-o", str(md_file)).returncode == 0
    md = md_file.read_text()
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", md) and MARKUP in md
    saved = tmp_path / "saved.json"
    assert saved.stat().st_mode & 0o777 == 0o600 and md_file.stat().st_mode & 0o777 == 0o600
    assert f"Hello {NASTY}" in json.loads(saved.read_text())["messages"][0][1]


def test_the_rich_style_shows_nasty_text_as_text() -> None:
    from rich.console import Console

    from vicuna_tui.engine.events import ReplyDone, ReplyStats
    from vicuna_tui.frontends.rich_style import RichRenderer

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system="truecolor", width=100)
    renderer = RichRenderer(console, io.StringIO(""))
    renderer.show_message("user", NASTY)
    renderer.show_message("assistant", NASTY)
    renderer.info(NASTY)
    renderer.reply_start()
    for piece in re.findall(".{1,7}", NASTY, re.S):
        renderer.reply_delta(piece)
    renderer.reply_end(ReplyDone(1, NASTY, "cancelled", ReplyStats()))
    out = buffer.getvalue()
    # Rich colours its own labels (SGR: ESC [ ... m) and redraws its live tail (hide and
    # show the cursor, line up, erase the line); nothing else may get through.
    plain = re.sub(r"\x1b\[(?:[0-9;]*m|\?25[lh]|[0-9]*[AK])", "", out)
    clean(plain, "rich")
    for sequence in ("\x1b[2J", "\x1b[5i", "\x1b[31;7;5m", "\x1b]", "\x1bP"):
        assert sequence not in out
    assert MARKUP in plain


async def test_the_tui_shows_nasty_text_as_text(home: Path) -> None:
    with Store() as store:
        conv = store.create_conversation(title=f"Title {NASTY}", model_name=f"m {NASTY}")
        store.add_message(conv.id, SavedMessage("user", f"Question {NASTY}"))
        store.add_message(
            conv.id, SavedMessage("assistant", f"Answer {NASTY}", finish_reason="stop")
        )
    backend = ScriptedBackend([[f"Live {NASTY}"]])
    app = make_app(lambda load: backend, conversation_id=conv.id)
    async with run_test(app, size=(160, 50)) as pilot:
        await ready(pilot)
        await send(pilot, "hi")
        await reply_done(pilot)
        app.notify(f"toast {NASTY}", title=NASTY)  # as every widget's notify() calls it
        toasts = app._notifications
        await wait_for(pilot, lambda: any(n.message.startswith("toast") for n in toasts))
        toast = next(n for n in toasts if n.message.startswith("toast"))
        clean(toast.message + toast.title, "toast")
        assert MARKUP in toast.message and not toast.markup
        svg = app.export_screenshot()
    text = html.unescape(svg).replace("\xa0", " ")
    clean(text, "TUI")
    assert "markup" in text and "[bold red]" in text
    assert "Live start" in text and "Answer start" in text
