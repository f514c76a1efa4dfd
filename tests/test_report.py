"""Observability: the progress display (live on a terminal, plain lines otherwise) and
``parsl-quantum report`` on the monitoring database of a real run on two pools."""

from __future__ import annotations

import io
import os
import pty
import select
from pathlib import Path

import matplotlib.image
import parsl
import pytest

from miniapps._common import warm_up
from parsl_quantum.configs import local
from parsl_quantum.workflow import cli
from parsl_quantum.workflow.progress import ProgressRecorder, RunProgress
from parsl_quantum.workflow.run_report import draw_timeline, load_report


def test_plain_progress_prints_each_quarter_once() -> None:
    stream = io.StringIO()
    with RunProgress(stream, interval=0.0) as progress:
        for done in range(1, 11):
            progress("cpu", done, 10)
        progress("qpu", 1, 1)
    lines = stream.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "pool cpu: 3/10 tasks done",
        "pool cpu: 5/10 tasks done",
        "pool cpu: 8/10 tasks done",
        "pool cpu: 10/10 tasks done",
        "pool qpu: 1/1 tasks done",
    ]
    assert all(line.startswith("[") and "s] pool" in line for line in lines)


def test_plain_progress_follows_growing_totals_and_ends_with_the_final_count() -> None:
    """A run that submits as it goes (an optimiser loop) ends on its real total, once."""
    stream = io.StringIO()
    with RunProgress(stream, interval=3600.0) as progress:
        for step in range(1, 51):
            progress("cpu", 2 * step - 2, 2 * step)
            progress("cpu", 2 * step, 2 * step)
    lines = [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == ["pool cpu: 2/2 tasks done", "pool cpu: 100/100 tasks done"]


def test_progress_recorder_counts_submitted_and_finished_tasks(tmp_path: Path) -> None:
    from concurrent.futures import Future

    seen: list[tuple[str, int, int]] = []
    recorder = ProgressRecorder(tmp_path / "tasks.csv", progress=lambda *a: seen.append(a))
    futures: list[Future[int]] = [Future() for _ in range(3)]
    for i, fut in enumerate(futures):
        recorder.track(fut, task=f"t{i}", kind="evaluate", pool="cpu" if i < 2 else "qpu")
    futures[1].set_result(1)
    futures[2].set_result(2)
    futures[0].set_result(0)
    assert seen == [
        ("cpu", 0, 1),
        ("cpu", 0, 2),
        ("qpu", 0, 1),
        ("cpu", 1, 2),
        ("qpu", 1, 1),
        ("cpu", 2, 2),
    ]
    assert len(recorder.rows) == 3 and recorder.write().exists()


def test_live_progress_on_a_terminal_shows_bars_counts_and_elapsed_time() -> None:
    master, slave = pty.openpty()
    terminal = os.fdopen(slave, "w")
    progress = RunProgress(terminal)
    assert progress.live, "a pseudo-terminal is a terminal"
    with progress:
        progress("cpu", 1, 4)
        progress("qpu", 2, 2)
        progress("cpu", 4, 4)
    terminal.flush()
    screen = b""
    while select.select([master], [], [], 0.5)[0]:
        chunk = os.read(master, 65536)
        if not chunk:
            break
        screen += chunk
    terminal.close()
    os.close(master)
    text = screen.decode(errors="replace")
    assert "\x1b[" in text, "drawn with terminal control sequences"
    assert "pool cpu" in text and "4/4" in text
    assert "pool qpu" in text and "2/2" in text
    assert "0:00:0" in text, "time since the run began"


@pytest.fixture(scope="module")
def two_pool_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run with monitoring: a few tasks on each of the cpu and qpu pools."""
    run_dir = tmp_path_factory.mktemp("report")
    with parsl.load(local(run_dir, ("cpu", "qpu"), monitoring=True)):
        warm = parsl.python_app(warm_up, executors=["cpu"])(
            "aer", parsl_resource_specification={"backend": "aer"}
        )
        assert warm.result() > 0
        futures = [
            parsl.python_app(os.getpid, executors=[pool])() for pool in ("cpu", "qpu", "cpu")
        ]
        assert all(f.result() > 0 for f in futures)
    parsl.clear()
    return run_dir


def test_report_lanes_match_the_pools_used(two_pool_run: Path) -> None:
    report = load_report(two_pool_run)
    assert set(report.pools) == {"cpu", "qpu"}
    assert report.pools["cpu"].tasks == 2 and report.pools["qpu"].tasks == 1
    assert all(s.retries == 0 and s.failovers_out == 0 for s in report.pools.values())
    assert all(0 < s.busy_fraction <= 1 for s in report.pools.values())
    assert all(s.queue_waits and min(s.queue_waits) >= 0 for s in report.pools.values())
    picture = two_pool_run / "lanes.png"
    labels = draw_timeline(report, picture)
    assert labels == [lane.label for lane in report.lanes]
    assert {lane.pool for lane in report.lanes} == {"cpu", "qpu"}
    # at most one lane per worker (local(): cpu has 2 workers, qpu 1); without the run.json
    # of `parsl-quantum run`, a pool has as many lanes as it ran tries at once
    assert 1 <= sum(lane.pool == "cpu" for lane in report.lanes) <= 2
    assert sum(lane.pool == "qpu" for lane in report.lanes) == 1
    image = matplotlib.image.imread(picture)
    assert image.ndim == 3 and image.shape[0] > 50 and image.std() > 0


def test_warm_up_tasks_are_apart_and_start_up_is_marked(two_pool_run: Path) -> None:
    report = load_report(two_pool_run)
    assert report.pools["cpu"].warmup_tasks == 1 and report.pools["qpu"].warmup_tasks == 0
    assert sum(t.warmup for t in report.tries) == 1
    first_task = min(t.running or 0.0 for t in report.tries)
    assert {s.pool for s in report.startups} == {"cpu", "qpu"}
    for startup in report.startups:
        assert startup.running is not None and startup.requested <= startup.running
    assert report.worker_starts and all(0 <= w <= first_task for w in report.worker_starts[:2])
    assert draw_timeline(report, two_pool_run / "marked.png")


def test_report_command_prints_the_table_and_writes_the_timeline(
    two_pool_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", str(two_pool_run)]) == 0
    out = capsys.readouterr().out
    assert "pool" in out and "cpu" in out and "qpu" in out and "busy" in out
    assert "warm-up" in out and "pool cpu: block requested at" in out
    assert "worker managers connected at" in out
    assert (two_pool_run / "timeline.png").stat().st_size > 0


def test_report_without_a_monitoring_database_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "monitoring.db does not exist" in err
