"""Errors that cross the bridge. Anything else that escapes is a bug (shown only with --debug)."""


class LoomError(Exception):
    exit_code = 1

    def __init__(self, message: str, *, status: str | None = None, summary: dict | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.summary = summary


class UsageError(LoomError):
    """Bad input or setup: exit 2 with one actionable line. Raised before anything is written."""

    exit_code = 2


class DomainError(LoomError):
    """A well-formed domain outcome that is not success (exit 1)."""

    exit_code = 1
