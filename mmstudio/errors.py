"""Errors that carry a message meant for a person (UI message, one-line CLI reason)."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input or an impossible request; the message is shown to the user as is."""


class ModelUnavailable(UserError):
    """A catalog model that cannot be loaded here (weights missing, offline, no GPU...)."""

    def __init__(self, model_id: str, reason: str) -> None:
        super().__init__(f"model '{model_id}' is unavailable: {reason}")
        self.model_id = model_id
        self.reason = reason
