"""The stop request `tecl run` sets on SIGTERM or Ctrl-C, in a module that imports nothing:
the handler is installed before the heavy imports, so a stop during start-up is not lost."""


class StopRequest:
    """A request to stop trading (`tecl run` sets it on SIGTERM), asked before every new
    order: once set, the run sends nothing more and leaves what is working to the broker."""

    def __init__(self) -> None:
        self._reason: str | None = None

    def request(self, reason: str) -> None:
        # One attribute store: safe from a signal handler, which runs between bytecodes.
        self._reason = self._reason or reason

    def __call__(self) -> str | None:
        return self._reason
