"""Library warnings (transformers, torch, huggingface_hub) go to engine.log, never to
the user's terminal: they are for us, and they would break up a reply or a pipe.
With --debug they stay on stderr."""

from __future__ import annotations

import logging

from vicuna_tui import locations

_LOGGER = "py.warnings"


def send_warnings_to_log() -> None:
    """Route Python warnings into ``engine.log`` (or nowhere, if it cannot be written)."""
    logging.captureWarnings(True)
    logger = logging.getLogger(_LOGGER)
    logger.propagate = False
    if logger.handlers:
        return
    handler: logging.Handler
    try:
        path = locations.engine_log_path()
        locations.open_private(path, append=True).close()
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    except OSError:
        handler = logging.NullHandler()
    logger.addHandler(handler)
