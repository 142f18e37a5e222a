"""What the agent is told: the task itself, and the feedback after a failed attempt."""

from __future__ import annotations

from storage.repos import Repo
from storage.tasks import Task


def verify_commands(repo: Repo) -> list[tuple[str, str]]:
    steps = [("pre", repo.pre_command), ("build", repo.build_command),
             ("test", repo.test_command), ("lint", repo.lint_command)]  # fmt: skip
    return [(name, command) for name, command in steps if command.strip()]


def task_prompt(task: Task, repo: Repo) -> str:
    lines = [
        f"You are working on task {task.key} in the git repository in the current directory",
        f"(branch agent/{task.key}, created from {repo.default_branch}).",
        "",
        f"# {task.title}",
    ]
    if task.description.strip():
        lines += ["", task.description.strip()]
    if task.acceptance.strip():
        lines += ["", "## Acceptance", task.acceptance.strip()]
    checks = verify_commands(repo)
    lines += ["", "## How your work is checked"]
    if checks:
        lines += ["After you finish, these commands run in the repository and must succeed:"]
        lines += [f"- {name}: `{command}`" for name, command in checks]
    else:
        lines += ["No automated checks are configured; keep the change correct and minimal."]
    lines += [
        "",
        "Make the change in this working tree. Keep it focused on the task. You may commit;",
        "anything you leave uncommitted is committed for you.",
    ]
    return "\n".join(lines)


def feedback_prompt(feedback: str, *, with_task: str | None = None) -> str:
    """The retry prompt: the failure, quoted from the end; the task again when no session."""
    parts = []
    if with_task is not None:
        parts += [with_task, "", "## Your previous attempt failed"]
    else:
        parts += ["Your previous attempt failed the checks."]
    parts += [feedback.strip(), "", "Fix the cause, then stop. The checks run again after you."]
    return "\n".join(parts)
