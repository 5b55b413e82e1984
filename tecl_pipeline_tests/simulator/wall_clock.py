"""A fake wall clock (seconds since the epoch) for the simulator's rate-limit windows, so that
no test depends on where in a real minute it happens to run."""

MINUTE_START = 1_800_000_000  # a whole minute since the epoch


class WallClock:
    """Half a minute into the window that starts at MINUTE_START until a test moves it."""

    def __init__(self) -> None:
        self.now = float(MINUTE_START + 30)

    def __call__(self) -> float:
        return self.now
