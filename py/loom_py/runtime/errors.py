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


def did_you_mean(word: str, choices) -> str:
    """' (did you mean 'x'?)' for the closest of ``choices`` to a misspelled ``word``, else ''."""
    import difflib

    names = [str(c) for c in choices]
    close = difflib.get_close_matches(str(word), names, n=1, cutoff=0.6)
    if not close:  # a prefix of exactly one name ('churn' for 'churned')
        close = [n for n in names if n.lower().startswith(str(word).lower())][:2]
        close = close if len(close) == 1 else []
    return f" (did you mean '{close[0]}'?)" if close else ""
