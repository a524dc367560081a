"""Errors that carry a message meant for a person (UI message, one-line CLI reason)."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input or an impossible request; the message is shown to the user as is."""


class ModelUnavailable(UserError):
    """A catalog model that cannot be loaded here (weights missing, offline, no GPU...).

    ``message``, when given, is what a person reads instead of the default sentence: one or two
    plain sentences saying what happened and what to do (``reason`` stays short, for tables)."""

    def __init__(self, model_id: str, reason: str, message: str | None = None) -> None:
        super().__init__(message or f"model '{model_id}' is unavailable: {reason}")
        self.model_id = model_id
        self.reason = reason
