"""What the agent is told: the plan it must propose, the task itself (with the approved plan
as a binding contract), the feedback after a failed attempt, and how to go on after the
budget stopped the work."""

from __future__ import annotations

import json

from storage.repos import Repo
from storage.tasks import Task
from worker.plan import Plan, UnreadablePlan, plan_json

PLAN_SHAPE = {
    "summary": "one or two sentences: what will change and why",
    "approach": "how you will do it, in a short paragraph",
    "steps": ["first concrete step", "second concrete step"],
    "files_to_touch": ["path/to/existing_file.py", "path/to/new_file.py"],
    "risks": ["what could go wrong, or what you are unsure of"],
    "acceptance_check": "how anyone can tell the task is done",
}


def verify_commands(repo: Repo) -> list[tuple[str, str]]:
    steps = [("pre", repo.pre_command), ("build", repo.build_command),
             ("test", repo.test_command), ("lint", repo.lint_command)]  # fmt: skip
    return [(name, command) for name, command in steps if command.strip()]


def _task_lines(task: Task) -> list[str]:
    lines = [f"# {task.title}"]
    if task.description.strip():
        lines += ["", task.description.strip()]
    if task.acceptance.strip():
        lines += ["", "## Acceptance", task.acceptance.strip()]
    return lines


def plan_prompt(
    task: Task, repo: Repo, previous: Plan | UnreadablePlan | None, feedback: str | None,
    context: str = "",
) -> str:  # fmt: skip
    """Ask for a plan, not a change: read the code, then answer with one JSON object.
    `context`: the repo map and what happened before (worker/context.py)."""
    lines = [
        f"You are planning task {task.key} in the git repository in the current directory",
        f"(branch agent/{task.key}, created from {repo.default_branch}).",
        "Do not change any file: read the code you need (read-only tools only), then propose",
        "a plan. A person reviews it; once approved, it becomes the contract for the change.",
        "",
        *_task_lines(task),
        *_context_lines(context),
        "",
        "## Your answer",
        "Answer with exactly one JSON object of this shape, and output only that JSON object",
        "(no other text, no tool call to leave plan mode):",
        "",
        json.dumps(PLAN_SHAPE, indent=2),
        "",
        "- steps: the concrete steps, in order.",
        "- files_to_touch: EVERY file you will create, change or delete, as exact paths",
        "  relative to the repository root (no directories, no globs). It is enforced: a",
        "  change to any file not listed is rejected.",
        "- risks: may be an empty list.",
    ]
    checks = verify_commands(repo)
    if checks:
        lines += ["", "After the change, these commands must succeed:"]
        lines += [f"- {name}: `{command}`" for name, command in checks]
    if isinstance(previous, Plan):
        shown = {key: value for key, value in plan_json(previous).items() if key != "ok"}
        lines += ["", "## Your previous plan", "```json", json.dumps(shown, indent=2), "```"]
    elif isinstance(previous, UnreadablePlan):
        lines += ["", "## Your previous answer could not be read",
                  f"Why: {previous.error}", "It began:", "```",
                  previous.raw[:2000].strip(), "```"]  # fmt: skip
    if feedback and feedback.strip():
        lines += ["", "## What the reviewer wants changed", feedback.strip(), "",
                  "Revise the plan accordingly and answer with the whole new plan."]  # fmt: skip
    elif previous is not None:
        lines += ["", "A new plan was requested. Answer with the whole plan."]
    return "\n".join(lines)


def contract_lines(plan: Plan) -> list[str]:
    """The approved plan, as the implementing agent must follow it."""
    lines = ["## Approved plan (binding contract)", plan.summary, "", "Steps:"]
    lines += [f"{n}. {step}" for n, step in enumerate(plan.steps, 1)]
    lines += ["", "Change only these files:"]
    lines += [f"- {path}" for path in plan.files_to_touch]
    lines += ["Changing, creating or deleting any other file makes the change fail review."]
    if plan.acceptance_check:
        lines += ["", f"Acceptance check: {plan.acceptance_check}"]
    return lines


def _context_lines(context: str) -> list[str]:
    return ["", context.strip()] if context.strip() else []


def task_prompt(task: Task, repo: Repo, contract: Plan | None = None, context: str = "") -> str:
    lines = [
        f"You are working on task {task.key} in the git repository in the current directory",
        f"(branch agent/{task.key}, created from {repo.default_branch}).",
        "",
        *_task_lines(task),
    ]
    if contract is not None:
        lines += ["", *contract_lines(contract)]
    lines += _context_lines(context)
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
        parts += [with_task, "", "## Your previous attempt was not accepted"]
    else:
        parts += ["Your previous attempt was not accepted."]
    parts += [feedback.strip(), "", "Fix the cause, then stop. The checks run again after you."]
    return "\n".join(parts)


def resume_prompt(reason: str, *, with_task: str | None = None) -> str:
    """The first prompt after Extend & resume: go on from where the budget stopped the work;
    the task again when the agent's session cannot be resumed."""
    parts = []
    if with_task is not None:
        parts += [with_task, "", "## You were stopped by the budget"]
    parts += [
        f"Your earlier work on this task was stopped because the task reached its budget: "
        f"{reason}. The budget has been raised.",
        "What you had done is committed on this branch (see `git log`). Continue from the "
        "current state of the working tree and finish the task, then stop. The checks run "
        "after you.",
    ]
    return "\n".join(parts)


def interrupted_prompt(reason: str, *, with_task: str | None = None) -> str:
    """The first prompt after the model API refused a run (rate limit, overload) and the
    task waited: go on; the task again when the agent's session cannot be resumed."""
    parts = []
    if with_task is not None:
        parts += [with_task, "", "## You were interrupted"]
    parts += [
        f"Your earlier run on this task was interrupted: {reason}. It has been retried after "
        "a wait.",
        "Anything you had done is committed on this branch (see `git log`). Continue from "
        "the current state of the working tree and finish the task, then stop. The checks "
        "run after you.",
    ]
    return "\n".join(parts)
