"""Exceptions that carry a message a user can act on."""


class ShiftbenchError(Exception):
    """Base class: every error shiftbench raises on bad input says what is wrong and how to fix it."""

    #: the command's exit status when this error ends it (2: a usage or config error)
    exit_code = 2


class UnknownNameError(ShiftbenchError, KeyError):
    """A dataset, method, model or scorer name that is not registered."""

    def __init__(self, kind: str, name: str, valid: list[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(self.valid) or '(none)'}")

    def __reduce__(self):  # picklable, so that it crosses process boundaries (joblib, submitit)
        return type(self), (self.kind, self.name, self.valid)

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


class MissingDataError(ShiftbenchError, FileNotFoundError):
    """Data expected on disk is absent; the message names the path and the command that fetches it."""

    def __init__(self, what: str, path: str, command: str, size: str | None = None):
        self.what, self.path, self.command, self.size = what, path, command, size
        size_note = f" ({size})" if size else ""
        super().__init__(f"{what} not found at {path}. Fetch it with: {command}{size_note}")

    def __reduce__(self):
        return type(self), (self.what, self.path, self.command, self.size)

    def __str__(self) -> str:
        return self.args[0]


class InvalidArrayError(ShiftbenchError, ValueError):
    """An array crossing the method boundary has the wrong shape, dtype or values."""
