"""The one way a front end gets its backend (the TUI, the arena, the line front ends).

Apart from ``backends`` (which local engine runs a model) because it also builds the
model's own process and the remote backend, and ``process`` itself asks ``backends``
which engine to run in the child.
"""

from __future__ import annotations

from vicuna_tui.engine.backend import Backend
from vicuna_tui.engine.settings import LoadSettings, RemoteSettings


def make_backend(
    load: LoadSettings,
    remote: RemoteSettings | None = None,
    *,
    own_process: bool = False,
    debug: bool = False,
) -> Backend:
    """A server's backend when ``remote`` is given, else the local model: in a process of
    its own for a front end that draws (the TUI and the arena: drawing must never hold up
    decoding), or in this one (the line front ends).  ``debug``: llama.cpp's own log on
    stderr (in this process), tracebacks in the model process's log (in its own)."""
    if remote is not None:
        from vicuna_tui.engine.remote.backend import RemoteBackend

        return RemoteBackend(remote)
    if own_process:
        from vicuna_tui.engine.process import ProcessBackend

        return ProcessBackend(load, debug=debug)
    from vicuna_tui.engine.backends import local_backend

    return local_backend(load, native_log=debug)
