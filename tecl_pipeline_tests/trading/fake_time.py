"""Execution's clock in tests: sleeping advances it at once, and is counted."""

from tecl_pipeline.trading.execution import Pacing


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def pacing(self) -> Pacing:
        return Pacing(sleep=self.sleep, monotonic=lambda: self.now)
