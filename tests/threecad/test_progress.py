"""threecad.progress: bars on a terminal, periodic log lines without one, nothing when switched off."""

from __future__ import annotations

import io
import threading

import pytest

from threecad.parallel import thread_map
from threecad.progress import LogProgress, LogSchedule, NullProgress, format_duration, progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_log(total, desc="masks", interval=10.0, **kw):
    clock, out = FakeClock(), io.StringIO()
    bar = LogProgress(total, desc, unit="img", interval=interval, file=out, clock=clock,
                      schedule=LogSchedule(), **kw)
    return bar, clock, out


def test_a_line_every_interval_with_done_total_rate_and_eta():
    bar, clock, out = make_log(100)
    for _ in range(9):  # 9 images in 9 s: no line yet
        clock.now += 1.0
        bar.update()
    assert out.getvalue() == ""
    clock.now += 1.0  # 10 s: the first line
    bar.update(11)
    lines = out.getvalue().splitlines()
    assert lines == ["threecad: masks: 20/100 img (20%), 2 img/s, ETA 40s"]
    clock.now += 5.0
    bar.update(10)
    assert len(out.getvalue().splitlines()) == 1  # not yet due again
    clock.now += 5.0
    bar.update(10)
    assert out.getvalue().splitlines()[-1] == "threecad: masks: 40/100 img (40%), 2 img/s, ETA 30s"
    bar.close()
    assert out.getvalue().splitlines()[-1] == "threecad: masks: done, 40 img in 20s"


def test_a_short_phase_prints_nothing():
    bar, clock, out = make_log(5)
    for _ in range(5):
        clock.now += 1.0
        bar.update()
    bar.close()
    assert out.getvalue() == ""


def test_many_short_phases_still_give_a_line_every_interval():
    """A leaderboard of short phases: the interval runs across phases, not within each."""
    schedule, clock, out = LogSchedule(), FakeClock(), io.StringIO()
    for i in range(6):
        bar = LogProgress(4, f"phase {i}", unit="img", interval=10.0, file=out, clock=clock, schedule=schedule)
        for _ in range(4):
            clock.now += 1.0
            bar.update()
        bar.close()
    phases = [line.split(":")[1].strip() for line in out.getvalue().splitlines() if "ETA" in line]
    assert phases == ["phase 2", "phase 4"]  # at 12 s and 22 s of a 24 s run


def test_unknown_total_growing_total_and_postfix():
    bar, clock, out = make_log(None, interval=0.0)
    clock.now += 2
    bar.update(4)
    assert out.getvalue().splitlines()[-1] == "threecad: masks: 4 img, 2 img/s, elapsed 2s"
    bar.total = 0
    bar.total += 10  # eval/distributed.py grows its bar as tasks are submitted
    bar.set_postfix(loss="0.5000", img_s="3.0")
    clock.now += 2
    bar.update(1)
    assert out.getvalue().splitlines()[-1] == ("threecad: masks: 5/10 img (50%), 1.2 img/s, ETA 4s "
                                               "[loss=0.5000, img_s=3.0]")


def test_byte_amounts_are_scaled():
    clock, out = FakeClock(), io.StringIO()
    bar = LogProgress(4 << 20, "3CAD.zip", unit="B", unit_scale=True, interval=0.0, file=out, clock=clock,
                      schedule=LogSchedule())
    clock.now += 2
    bar.update(1 << 20)
    assert out.getvalue().splitlines()[-1] == "threecad: 3CAD.zip: 1.0 MiB/4.0 MiB (25%), 512.0 KiB/s, ETA 6s"


def test_modes_chosen_by_terminal_and_environment(monkeypatch):
    monkeypatch.delenv("THREECAD_PROGRESS", raising=False)
    assert isinstance(progress(3, "x", file=io.StringIO()), LogProgress)  # not a terminal
    assert isinstance(progress(3, "x", enabled=False), NullProgress)
    assert isinstance(progress(3, "x", disable=True), NullProgress)  # tqdm's spelling
    assert not isinstance(progress(3, "x", disable=True), LogProgress)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    from tqdm import tqdm

    bar = progress(3, "x", file=Tty())
    assert isinstance(bar, tqdm)
    bar.close()
    monkeypatch.setenv("THREECAD_PROGRESS", "none")
    assert isinstance(progress(3, "x", file=Tty()), NullProgress)
    monkeypatch.setenv("THREECAD_PROGRESS", "log")
    assert isinstance(progress(3, "x", file=Tty()), LogProgress)


def test_null_progress_counts_and_supports_the_bar_interface():
    with progress(10, "x", enabled=False) as bar:
        bar.update(3)
        bar.total += 1
        bar.set_postfix(a=1)
        bar.set_postfix_str("b")
        bar.set_description("y")
    assert bar.n == 3 and bar.total == 11


def test_thread_map_reports_through_the_helper_and_keeps_order(monkeypatch, capsys):
    monkeypatch.setenv("THREECAD_PROGRESS", "log")
    monkeypatch.setenv("THREECAD_PROGRESS_INTERVAL", "0")
    out = thread_map(lambda x: x * x, range(50), workers=4, progress=True, desc="squares", unit="n")
    assert out == [x * x for x in range(50)]
    err = capsys.readouterr().err.splitlines()
    assert err and all(line.startswith("threecad: squares: ") for line in err)
    assert err[-1].startswith("threecad: squares: done, 50 n")
    thread_map(lambda x: x, range(5), progress=False, desc="quiet")
    assert capsys.readouterr().err == ""


def test_thread_map_refuses_a_negative_worker_count():
    with pytest.raises(ValueError, match="at least 1"):
        thread_map(str, [1], workers=-3)


def test_log_progress_is_thread_safe():
    bar, clock, out = make_log(8000, interval=0.0)
    clock.now += 1.0

    def work():
        for _ in range(1000):
            bar.update()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bar.close()
    assert bar.n == 8000
    assert out.getvalue().splitlines()[-1].startswith("threecad: masks: done, 8,000 img")


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59.4, "59s"), (61, "1m01s"), (3725, "1h02m"),
                                           (float("inf"), "?")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
