"""vicuna-tui: a keyboard-driven terminal chat for local LLMs."""

__version__ = "0.1.0"
