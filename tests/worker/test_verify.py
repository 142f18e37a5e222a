from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from worker.agents.environment import agent_environment
from worker.verify import StepResult, VerifyResult, VerifyStep, run_verify

ENV = {"PATH": os.environ.get("PATH", os.defpath)}


async def test_passing_steps(tmp_path: Path) -> None:
    steps = [VerifyStep("build", "echo building"), VerifyStep("test", "echo testing >&2")]
    result = await run_verify(steps, cwd=tmp_path, env=ENV, timeout_per_step=10)
    assert result.passed
    assert result.failed_step is None
    assert [step.name for step in result.steps] == ["build", "test"]
    assert all(step.passed for step in result.steps)
    assert result.steps[0].output_tail == "building\n"
    assert result.steps[1].output_tail == "testing\n"
    assert "passed" in result.summary()


async def test_failing_build_stops_before_test(tmp_path: Path) -> None:
    marker = tmp_path / "tests-ran"
    steps = [
        VerifyStep("build", "echo compiling; echo 'error: missing ;' >&2; exit 2"),
        VerifyStep("test", f"touch {marker}"),
    ]
    result = await run_verify(steps, cwd=tmp_path, env=ENV, timeout_per_step=10)
    assert not result.passed
    assert len(result.steps) == 1
    assert not marker.exists()
    failed = result.failed_step
    assert failed is not None
    assert failed.name == "build"
    assert failed.exit_code == 2
    assert not failed.timed_out
    summary = result.summary()
    assert "'build'" in summary
    assert "exited with code 2" in summary
    assert "echo compiling; echo 'error: missing ;' >&2; exit 2" in summary
    assert "compiling\nerror: missing ;" in summary


async def test_step_timeout(tmp_path: Path) -> None:
    steps = [VerifyStep("test", "echo started; sleep 30"), VerifyStep("after", "true")]
    result = await run_verify(steps, cwd=tmp_path, env=ENV, timeout_per_step=1)
    failed = result.failed_step
    assert failed is not None
    assert failed.timed_out
    assert failed.exit_code is None
    assert failed.duration_seconds < 5
    assert len(result.steps) == 1
    summary = result.summary()
    assert "timed out" in summary
    assert "started" in summary


async def test_summary_keeps_the_tail_of_long_output(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "for i in range(5000): print(f'noise line {i}')\n"
        "print('FAILED tests/test_x.py::test_y - AssertionError: 1 != 2')\n"
        "sys.exit(1)\n"
    )
    (tmp_path / "noisy.py").write_text(script)
    steps = [VerifyStep("test", f"{sys.executable} noisy.py")]
    result = await run_verify(
        steps, cwd=tmp_path, env=ENV, timeout_per_step=10, output_limit=20_000
    )
    failed = result.failed_step
    assert failed is not None
    assert len(failed.output_tail) <= 20_000
    summary = result.summary()
    assert summary.endswith("FAILED tests/test_x.py::test_y - AssertionError: 1 != 2")
    assert "noise line 4999\n" in summary
    assert "noise line 1\n" not in summary
    assert len(summary) < 9000


async def test_environment_is_passed_and_secrets_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:telegram-secret")
    env = agent_environment(tmp_path / "home", {"VERIFY_FLAVOUR": "visible"})
    steps = [VerifyStep("env", 'echo "[$VERIFY_FLAVOUR] [$TELEGRAM_BOT_TOKEN] [$HOME]"')]
    result = await run_verify(steps, cwd=tmp_path, env=env, timeout_per_step=10)
    assert result.passed
    assert result.steps[0].output_tail == f"[visible] [] [{tmp_path / 'home'}]\n"


async def test_empty_commands_are_skipped(tmp_path: Path) -> None:
    steps = [VerifyStep("lint", ""), VerifyStep("build", "   "), VerifyStep("test", "true")]
    result = await run_verify(steps, cwd=tmp_path, env=ENV, timeout_per_step=10)
    assert result.passed
    assert [step.name for step in result.steps] == ["test"]


async def test_no_steps_pass() -> None:
    result = await run_verify([], cwd=Path("/"), env=ENV, timeout_per_step=10)
    assert result.passed
    assert result.failed_step is None
    assert result.steps == []
    assert result.summary()


def test_failed_step_is_the_first_failure() -> None:
    steps = [
        StepResult("a", "true", 0, False, 0.1, ""),
        StepResult("b", "false", 1, False, 0.1, "b failed"),
        StepResult("c", "sleep 9", None, True, 9.0, ""),
    ]
    result = VerifyResult(steps)
    assert not result.passed
    assert result.failed_step is steps[1]
    assert not steps[2].passed
