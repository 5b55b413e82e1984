"""Long work shows that it moves: a bar with rate and time left on a terminal, a plain line
now and then in a log (README "Progress")."""

import io
import re

import pytest

from tecl_pipeline.app.progress import PLAIN_LINES, PlainProgress, duration, progress, working
from tecl_pipeline_tests.app.cli_helpers import tecl


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_about_twenty_lines_with_rate_and_time_left():
    clock, out = FakeClock(), io.StringIO()
    shown = PlainProgress("replay", 1000, "sessions", out, clock=clock)
    for done in range(1, 1001):
        clock.now += 0.5
        shown.advance(done, f"session {done}")

    lines = out.getvalue().splitlines()
    assert len(lines) == PLAIN_LINES
    assert lines[9] == (
        "replay: 500/1000 sessions (50%), 2.00 sessions/s, 4 min 10 s left - session 500"
    )
    assert lines[-1] == (
        "replay: 1000/1000 sessions (100%), 2.00 sessions/s, done in 8 min 20 s - session 1000"
    )


def test_short_work_gets_a_line_for_each_unit_and_a_jump_still_writes_one():
    clock, out = FakeClock(), io.StringIO()
    shown = PlainProgress("soak", 3, "sessions", out, clock=clock)
    shown.advance(1)
    shown.advance(3)  # two at once: one line, not two

    assert out.getvalue().splitlines() == [
        "soak: 1/3 sessions (33%)",
        "soak: 3/3 sessions (100%), done in 0 s",
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (44.2, "45 s"), (60, "1 min 00 s"), (185, "3 min 05 s"), (7620, "2 h 07 min")],
)
def test_durations_read_as_a_person_says_them(seconds, text):
    assert duration(seconds) == text


def test_a_terminal_gets_a_bar_with_the_count_rate_and_time_left():
    out = Terminal()
    with progress("replay", 4, "sessions", out) as shown:
        for done in range(1, 5):
            shown.advance(done, f"2026-07-2{done}")

    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert "replay" in screen and "4/4 sessions" in screen and "100%" in screen
    assert re.search(r"\d+\.\d\d sessions/s", screen)
    # rich's time-left column, then the note.
    assert re.search(r"\d+:\d\d:\d\d left 2026-07-24", screen)


def test_work_that_cannot_count_says_what_it_does_on_a_terminal_only():
    terminal, log = Terminal(), io.StringIO()
    with working("backfill 2021..2026", terminal), working("backfill 2021..2026", log):
        assert terminal.getvalue().startswith("backfill 2021..2026 ...\n")
    # A log keeps the command's own lines only: its summary, or its one line of error.
    assert log.getvalue() == ""


def test_replay_shows_its_progress_in_a_log(tmp_path, market_dir):
    done = tecl(
        ["replay", "--data-dir", str(market_dir), "--start", "2026-07-29", "--end", "2026-07-31"],
        tmp_path,
    )

    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("replay: ")]
    assert [line.split(" (")[0] for line in lines] == [
        "replay: 1/3 sessions",
        "replay: 2/3 sessions",
        "replay: 3/3 sessions",
    ]
    assert re.search(r", \d+\.\d\d sessions/s, \d+ s left - 2026-07-29$", lines[0])
    assert re.search(r", done in \d+ s - 2026-07-31$", lines[-1])
