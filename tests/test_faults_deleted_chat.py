"""A chat deleted by another program while it is open (``sessions delete`` in another
shell, another vicuna-tui): noticed, said plainly, and everything in memory saved again
as a new chat.  The delete lands before a reply's first token, during it, or after it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, ScriptedBackend
from tui_helpers import make_app, ready, reply_done, run_test, send, settled, wait_for

from vicuna_tui.store import Store

SIZE = (120, 40)


def delete_elsewhere(conversation_id: str) -> None:
    """The user's other shell: the real CLI, in its own process."""
    done = subprocess.run(
        [sys.executable, "-m", "vicuna_tui", "sessions", "delete", conversation_id, "--yes"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def saved_chats() -> list[tuple[str, list[tuple[str, str]]]]:
    with Store() as store:
        ids = [c.id for c in store.listing.conversations()]
        return [(i, [(m.role, m.content) for m in store.get(i).messages]) for i in ids]


@pytest.mark.parametrize("when", ["before the reply", "during the reply", "after the reply"])
async def test_a_chat_deleted_elsewhere_is_saved_again_as_a_new_chat(home: Path, when: str) -> None:
    backend = ScriptedBackend([["Llamas", " hum."], ["They", " spit", " too."]])
    app = make_app(lambda load: backend)
    async with run_test(app, size=SIZE) as pilot:
        screen = await ready(pilot)
        await send(pilot, "Tell me about llamas.")
        await reply_done(pilot)
        [(first_id, _)] = saved_chats()
        assert screen.session.conversation is not None
        assert screen.session.conversation.id == first_id

        if when == "after the reply":
            delete_elsewhere(first_id)  # nothing is written until the next message
            assert saved_chats() == []
        else:
            backend.pause_after = 0 if when == "before the reply" else 1
        await send(pilot, "And what else?")
        if when != "after the reply":
            await wait_for(pilot, backend.paused.is_set)
            await settled(pilot)  # the question is on disk
            delete_elsewhere(first_id)
            backend.gate.set()
        await reply_done(pilot)
        await settled(pilot)

        toasts = [str(n.message) for n in app._notifications]
        assert any(
            f"chat {first_id[:8]} was deleted by another program" in t
            and "saved again as a new chat" in t
            for t in toasts
        ), toasts
        [(new_id, messages)] = saved_chats()
        assert new_id != first_id
        assert messages == [
            ("user", "Tell me about llamas."),
            ("assistant", "Llamas hum."),
            ("user", "And what else?"),
            ("assistant", "They spit too."),
        ]
        assert screen.sidebar.current_id == new_id  # the list shows the chat as it is now
        # And the chat goes on saving into its new record.
        backend.pause_after = None
        await send(pilot, "Thanks.")
        await reply_done(pilot)
        [(still_id, messages)] = saved_chats()
        assert still_id == new_id and len(messages) == 6


@pytest.mark.real_model
def test_the_pipe_mode_saves_a_deleted_chat_again(home: Path, smollm_gguf: Path) -> None:
    """The line front end on the real model: the delete lands between two questions."""
    chat = subprocess.Popen(
        [
            *(sys.executable, "-m", "vicuna_tui", "--model-path", str(smollm_gguf)),
            *("--style", "simple", "--temperature", "0", "--max-new-tokens", "8"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
        cwd=REPO,
    )
    assert chat.stdin is not None and chat.stdout is not None
    try:
        chat.stdin.write("What is the capital of France?\n")
        chat.stdin.flush()
        first_reply = chat.stdout.readline()  # the first reply has been saved
        [(first_id, _)] = saved_chats()
        delete_elsewhere(first_id)
        _, err = chat.communicate("And of Italy?\n", timeout=120)
    finally:
        chat.kill()
        chat.wait()
    assert chat.returncode == 0 and "Traceback" not in err
    assert f"chat {first_id[:8]} was deleted by another program" in err
    [(new_id, messages)] = saved_chats()
    assert new_id != first_id
    assert [m[0] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0][1] == "What is the capital of France?"
    assert messages[1][1] == first_reply.strip() and messages[2][1] == "And of Italy?"
