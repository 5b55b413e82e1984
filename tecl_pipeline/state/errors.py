"""What can go wrong with the journal, said so that a person can act on it (A4, A5, A9, D1).

Every message names the action (an IAM action such as s3:PutObject, or a file operation),
the resource (bucket/key or path) and the cause (the AWS error code, or the OS error);
never credentials, which these errors never see.

Which errors stop trading:
- JournalUnavailableError is a RefusedToTrade: the journal cannot be reached, read or
  trusted, so the run has no state to trade on (A4, A5, A8, A9, D3). Raised by preflight
  and by reads, both before any order.
- JournalWriteError (and JournalConflictError) are plain Exceptions: they happen after the
  orders were sent, when refusing to trade is meaningless. The run must fail loudly (the
  record is already spooled for replay, D1) instead of being shown as a polite refusal.
"""

from tecl_pipeline.core.errors import RefusedToTrade


class JournalError(Exception):
    """Base class: `action`, `resource` and `code` name what failed, on what, and why."""

    def __init__(self, message: str, *, action: str, resource: str, code: str) -> None:
        super().__init__(message)
        self.action = action
        self.resource = resource
        self.code = code


class JournalUnavailableError(JournalError, RefusedToTrade):
    """The journal cannot be used (missing bucket, wrong region, AccessDenied, unreachable
    endpoint, unreadable record store): no trading without the state it needs."""


class JournalWriteError(JournalError):
    """A record could not be written and verified. `spool_path` is where it was kept for
    `replay_spool()` (None only if even spooling failed, which the message says)."""

    def __init__(
        self,
        message: str,
        *,
        action: str,
        resource: str,
        code: str,
        spool_path: str | None = None,
    ) -> None:
        super().__init__(message, action=action, resource=resource, code=code)
        self.spool_path = spool_path


class JournalConflictError(JournalWriteError):
    """Another, different record already holds this record's key (D2, X5). The existing
    record is left untouched; this one is spooled so that nothing is silently lost."""
