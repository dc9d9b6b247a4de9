"""Errors the engine reports to a person: what went wrong, and how to fix it."""

from __future__ import annotations


class VicunaError(Exception):
    """An error with a message for people and a hint that names the fix.

    Front ends show ``message`` and ``hint`` without a traceback (unless --debug).
    """

    exit_code = 2

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        """Two lines, as the line front ends print it: the message, then the hint."""
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message

    def inline(self) -> str:
        """One line, for a toast or a note: the message, the hint in brackets."""
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses may take other arguments: rebuild from the state, not from __init__,
        # so that errors keep their hint on the way back from the model's process.
        return (_rebuild, (type(self), self.message, self.hint, dict(self.__dict__)))


def _rebuild(
    cls: type[VicunaError], message: str, hint: str, state: dict[str, object]
) -> VicunaError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    error.message, error.hint = message, hint
    return error


class ModelNotFoundError(VicunaError):
    """The model path does not exist, or is not a model."""


class OfflineError(VicunaError):
    """A Hub model was asked for while the Hub cannot be reached."""


class DeviceError(VicunaError):
    """A device was asked for that this machine does not have."""


class SettingsError(VicunaError):
    """Flags or settings that cannot work, alone or together."""


class QuantizationError(VicunaError):
    """8-bit or 4-bit loading is not available here."""


class OutOfMemoryError(VicunaError):
    """The model does not fit in memory."""


class PromptTooLongError(VicunaError):
    """One prompt is longer than the model's context."""


class GenerationError(VicunaError):
    """Generation failed in the backend."""


class ModelProcessLost(GenerationError):
    """The process that held the model is gone (killed, crashed): load it again."""


class RemoteError(VicunaError):
    """A remote server could not be reached or answered with an error."""


class ModelChoiceError(RemoteError):
    """The server offers several models and none was named."""

    def __init__(self, endpoint: str, models: list[str]) -> None:
        super().__init__(
            f"{endpoint} serves {len(models)} models: {', '.join(models)}",
            f"pick one with --model NAME (e.g. --model {models[0]})",
        )
        self.models = models


class DeltaError(VicunaError):
    """Base and delta (or target) do not fit together, or the target cannot be written."""
