"""Reading the agent's plan: JSON in prose, in fences, drafts, and every way it can be wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker.plan import (
    Plan,
    PlanError,
    UnreadablePlan,
    failed_plan_json,
    parse_plan,
    plan_from_json,
    plan_json,
    previous_from_json,
    render_markdown,
    render_unreadable_markdown,
)


def _plan(**changes: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "summary": "Add a greeting",
        "approach": "Write one file.",
        "steps": ["Create hello.txt", "Mention it in the README"],
        "files_to_touch": ["hello.txt", "README.md"],
        "risks": [],
        "acceptance_check": "hello.txt exists",
    }
    plan.update(changes)
    return plan


def _error(text: str) -> str:
    with pytest.raises(PlanError) as caught:
        parse_plan(text)
    return caught.value.reason


def test_a_bare_object_is_read() -> None:
    plan = parse_plan(json.dumps(_plan()))
    assert plan == Plan(
        summary="Add a greeting",
        approach="Write one file.",
        steps=("Create hello.txt", "Mention it in the README"),
        files_to_touch=("hello.txt", "README.md"),
        risks=(),
        acceptance_check="hello.txt exists",
    )


def test_fenced_json_with_prose_around_it() -> None:
    text = (
        "I looked at the repository. Here is my plan:\n\n```json\n"
        + json.dumps(_plan(), indent=2)
        + "\n```\n\nLet me know if {anything} should change."
    )
    assert parse_plan(text).summary == "Add a greeting"


def test_an_object_inside_prose_without_fences() -> None:
    text = f"Plan follows {json.dumps(_plan())} and that is all."
    assert parse_plan(text).files_to_touch == ("hello.txt", "README.md")


def test_of_two_plans_the_last_wins() -> None:
    draft = json.dumps(_plan(summary="Draft"))
    final = json.dumps(_plan(summary="Final"))
    text = f"First draft:\n```json\n{draft}\n```\nOn reflection:\n```json\n{final}\n```"
    assert parse_plan(text).summary == "Final"


def test_a_later_object_that_is_not_a_plan_is_ignored() -> None:
    report = json.dumps({"session_id": "s-1", "cost_usd": 0.1, "num_turns": 3})
    text = f"{json.dumps(_plan(summary='The plan'))}\n{report}\n"
    assert parse_plan(text).summary == "The plan"


def test_braces_and_quotes_inside_strings_do_not_confuse_it() -> None:
    tricky = _plan(
        summary='Escape "{" and "}" in templates',
        steps=['Replace "{name}" with "{{name}}"', "Handle a stray } and a \\ backslash"],
    )
    text = "Some {unbalanced prose\n" + json.dumps(tricky) + "\nbye }"
    plan = parse_plan(text)
    assert plan.summary == 'Escape "{" and "}" in templates'
    assert plan.steps[1] == "Handle a stray } and a \\ backslash"


def test_a_plan_wrapped_in_an_outer_object_is_found() -> None:
    assert parse_plan(json.dumps({"plan": _plan()})).summary == "Add a greeting"


def test_a_complete_plan_beats_a_later_partial_one() -> None:
    partial = json.dumps({"summary": "Only a summary"})
    assert parse_plan(json.dumps(_plan()) + "\n" + partial).summary == "Add a greeting"


def test_trailing_commas_are_an_error() -> None:
    text = '```json\n{"summary": "x", "steps": ["a",], "files_to_touch": ["a"],}\n```'
    reason = _error(text)
    assert "not valid JSON" in reason
    assert "line" in reason


def test_trailing_comma_without_a_fence_is_an_error_too() -> None:
    reason = _error('Here: {"summary": "x", "approach": "y",}')
    assert "no valid JSON object" in reason


def test_prose_only() -> None:
    assert _error("I would change hello.txt and be done.") == (
        "no JSON object found in the agent's answer"
    )
    assert _error("   ") == "the agent's answer was empty"


def test_missing_fields_are_named() -> None:
    plan = _plan()
    del plan["risks"], plan["acceptance_check"]
    assert _error(json.dumps(plan)) == "missing field(s): risks, acceptance_check"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"summary": 3}, "summary must be a string, not a number"),
        ({"summary": "  "}, "summary is empty"),
        ({"steps": "do it"}, "steps must be a list of strings, not a string"),
        ({"steps": ["ok", {"step": 2}]}, "steps[1] must be a string, not an object"),
        ({"steps": []}, "steps is empty: the plan needs at least one step"),
        ({"risks": "none"}, "risks must be a list of strings, not a string"),
        ({"files_to_touch": "a.py"}, "files_to_touch must be a list of paths, not a string"),
        ({"files_to_touch": [1]}, "files_to_touch[0] must be a string, not a number"),
        ({"files_to_touch": []}, "files_to_touch is empty: nothing could be approved"),
        ({"files_to_touch": ["  "]}, "files_to_touch[0] '' is empty"),
        ({"acceptance_check": ["a"]}, "acceptance_check must be a string, not a list"),
    ],
)
def test_wrong_types_name_the_field(changes: dict[str, Any], reason: str) -> None:
    assert _error(json.dumps(_plan(**changes))) == reason


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/etc/passwd", "is absolute"),
        ("src/../../secret", "'..' segment"),
        ("../outside.txt", "'..' segment"),
        ("src/", "is a directory"),
        ("a/./b.txt", "'.' or '..' segment"),
        ("a//b.txt", "not a plain relative path"),
        ("C:\\\\x.txt", "is absolute"),
    ],
)
def test_bad_paths_are_refused(path: str, problem: str) -> None:
    assert problem in _error(json.dumps(_plan(files_to_touch=["ok.txt", path])))


def test_paths_are_normalised_and_deduplicated() -> None:
    plan = parse_plan(json.dumps(_plan(files_to_touch=[" ./src/a.py ", "src/a.py", "././b.md"])))
    assert plan.files_to_touch == ("src/a.py", "b.md")


def test_null_optional_fields_become_empty() -> None:
    plan = parse_plan(json.dumps(_plan(risks=None, approach=None, acceptance_check=None)))
    assert (plan.risks, plan.approach, plan.acceptance_check) == ((), "", "")


def test_stored_forms_round_trip() -> None:
    plan = parse_plan(json.dumps(_plan()))
    stored = plan_json(plan)
    assert stored["ok"] is True
    assert json.loads(json.dumps(stored)) == stored  # what jsonb keeps
    assert plan_from_json(stored) == plan
    assert previous_from_json(stored) == plan
    assert plan_from_json(None) is None
    assert previous_from_json(None) is None


def test_an_unreadable_plan_is_stored_with_its_reason_and_the_tail_of_the_text() -> None:
    stored = failed_plan_json("no JSON\nobject found", "x" * 25_000 + "END")
    assert stored["ok"] is False
    assert stored["error"] == "no JSON object found"
    assert len(stored["raw"]) == 20_000
    assert stored["raw"].endswith("END")
    assert plan_from_json(stored) is None
    assert previous_from_json(stored) == UnreadablePlan("no JSON object found", stored["raw"])


def test_markdown() -> None:
    text = render_markdown(parse_plan(json.dumps(_plan(risks=["It may clash"]))))
    assert text.startswith("# Plan\n\nAdd a greeting\n")
    assert "1. Create hello.txt\n2. Mention it in the README" in text
    assert "- `hello.txt`\n- `README.md`" in text
    assert "## Risks\n\n- It may clash" in text
    assert "## Acceptance check\n\nhello.txt exists" in text
    unreadable = render_unreadable_markdown("no JSON object found", "I would just do it.")
    assert unreadable.startswith("# Plan could not be read\n\nno JSON object found\n")
    assert "I would just do it." in unreadable
