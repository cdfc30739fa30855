"""The run tables print a drift score on the side of the threshold it is on: rounding must not
show 0.250 beside "ok" (the real shard scores 0.24987 against the baseline's reference)."""

from __future__ import annotations

import pytest
from droughtwatch_contract.drift import is_drift, score_text


@pytest.mark.parametrize(
    ("score", "threshold", "text"),
    [
        (0.2498728331640835, 0.25, "0.2499"),  # below: rounded to 3 places it would read 0.250
        (0.24999996, 0.25, "0.24999996"),  # as many places as it takes
        (0.25, 0.25, "0.250"),  # at the threshold is drift, and reads so
        (0.2504, 0.25, "0.250"),  # above, and 0.250 is on the drift side too
        (0.5716, 0.25, "0.572"),
        (0.0123, None, "0.012"),  # no threshold known: three places
        (None, 0.25, "-"),
    ],
)
def test_a_score_reads_on_its_side_of_the_threshold(
    score: float | None, threshold: float | None, text: str
) -> None:
    assert score_text(score, threshold) == text
    if score is not None and threshold is not None:
        assert is_drift(float(text), threshold) == is_drift(score, threshold)


# -- a large run, and the history of an execution with a map run --------------------------------


def _outcome(files: int, failed: set[int], tmp_path):
    import datetime as dt

    from droughtwatch_inference.records import FileOutcome
    from droughtwatch_tools.execution import Execution
    from droughtwatch_tools.local.outcome import RunSummary, file_line
    from droughtwatch_tools.local.run import LocalRunOutcome

    summary = RunSummary("SUCCEEDED")
    for i in range(files):
        name = f"scene-{i:04d}.tfrecord"
        if i in failed:
            outcome = FileOutcome(
                f"raw/{dt.date(2026, 11, 27)}/{name}", "e", True, "processing", "failed", 1,
                last_error="InvalidRawFile: record 0 fails its CRC",
            )  # fmt: skip
            summary.files.append(file_line(name, outcome, 3))
        else:
            outcome = FileOutcome(
                f"raw/2026-11-27/{name}", "e", True, "done", "done", images=5, dropped=1,
                report_key=f"reports/2026-11-27/{name}/x.html",
            )  # fmt: skip
            report = tmp_path / "buckets" / "data" / "reports" / name / "x.html"
            summary.files.append(file_line(name, outcome, 3, report))
    return LocalRunOutcome(
        execution=Execution("local-1", "SUCCEEDED"),
        summary=summary,
        store_root=tmp_path / "buckets",
        history_file=tmp_path / "local-1.json",
        log_file=tmp_path / "local-1.jsonl",
    )


def test_past_fifty_files_a_run_prints_counts_by_state_then_the_failed_files(
    tmp_path, capsys, monkeypatch
) -> None:
    from droughtwatch_tools.run_tables import TABLE_FILES, print_local_run

    monkeypatch.setenv("COLUMNS", "120")
    print_local_run(_outcome(TABLE_FILES + 10, {3, 41}, tmp_path))
    out = capsys.readouterr().out
    assert "scene-0000.tfrecord" not in out.split("2 failed:")[0]  # no row per file
    (done,) = [line for line in out.splitlines() if line.split()[:1] == ["done"]]
    assert done.split()[1:] == ["58", "290", "58"]  # files, images, blank images
    (failed,) = [line for line in out.splitlines() if line.split()[:1] == ["failed"]]
    assert failed.split()[1] == "2"
    after = out[out.index("2 failed:") :]
    assert "scene-0003.tfrecord: InvalidRawFile: record 0 fails its CRC" in after
    assert "scene-0041.tfrecord" in after
    assert f"58 reports (Evidently HTML) under {tmp_path / 'buckets' / 'data' / 'reports'}" in out


def test_up_to_fifty_files_a_run_prints_a_row_per_file(tmp_path, capsys, monkeypatch) -> None:
    from droughtwatch_tools.run_tables import TABLE_FILES, print_local_run

    monkeypatch.setenv("COLUMNS", "120")
    print_local_run(_outcome(TABLE_FILES, set(), tmp_path))
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.strip().startswith("scene-")]
    assert len(rows) == 2 * TABLE_FILES  # its table row, and its report's path


def test_local_history_prints_the_map_run_its_children_and_a_childs_events(
    tmp_path, monkeypatch
) -> None:
    import datetime as dt
    import json

    from droughtwatch_tools.cli import app
    from droughtwatch_tools.execution import Execution, ExecutionEvent, MapRun
    from typer.testing import CliRunner

    monkeypatch.setenv("COLUMNS", "200")
    t0 = dt.datetime(2026, 11, 27, 6, tzinfo=dt.UTC)

    def child(item: int, failed: bool) -> Execution:
        states = ["Processing", "Processing succeeded?"]
        states += ["Inference", "Inference succeeded?", "Inference failed"] if failed else []
        events = [ExecutionEvent(1, "ExecutionStarted", t0)] + [
            ExecutionEvent(n, "TaskStateEntered", t0, state)
            for n, state in enumerate(states, start=2)
        ]
        error = ("ModelNotFound", "no model.json") if failed else (None, None)
        return Execution(
            f"item-{item}", "FAILED" if failed else "SUCCEEDED", error=error[0], cause=error[1],
            events=events, seconds=1.5, item=item,
        )  # fmt: skip

    run = MapRun(
        "arn:aws:states:eu-west-1:1:mapRun:p/items:1",
        "FAILED",
        {"total": 2, "succeeded": 1, "failed": 1},
        [child(0, False), child(1, True)],
    )
    parent = Execution(
        "local-1",
        "FAILED",
        error="States.ExceedToleratedFailureThreshold",
        cause="1 of 2 items failed",
        events=[ExecutionEvent(1, "MapStateEntered", t0, "Items")],
        map_runs=[run],
    )
    path = tmp_path / "local-1.json"
    path.write_text(json.dumps(parent.as_dict()))
    assert Execution.from_dict(json.loads(path.read_text())) == parent

    result = CliRunner().invoke(app, ["local", "history", str(path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "map runs of local-1 (failed: 2 of 2 items done, 1 failed)" in out
    (ok,) = [line for line in out.splitlines() if " item-0 " in line and " 1.5 " in line]
    assert "SUCCEEDED" in ok and "Processing succeeded?" in ok
    (bad,) = [line for line in out.splitlines() if " item-1 " in line and " 1.5 " in line]
    assert "FAILED" in bad and "Inference failed" in bad and "ModelNotFound: no model.json" in bad
    # a small run's children's events follow (a larger run's failed ones); another on request
    assert "child item-1 of local-1: FAILED" in out and "child item-0 of local-1" in out
    again = CliRunner().invoke(app, ["local", "history", str(path), "--item", "0"])
    assert "child item-0 of local-1: SUCCEEDED" in again.output
    missing = CliRunner().invoke(app, ["local", "history", str(path), "--item", "7"])
    assert missing.exit_code == 2 and "has no item 7" in missing.output
