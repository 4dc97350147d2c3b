"""Role files: the packaged cast loads, an override wins, every broken file is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autonoma.agents.roles import (
    PACKAGED_ACTORS,
    ROLE_NAMES,
    Role,
    RoleError,
    load_role,
    parse_role,
    render,
)
from autonoma.config import Settings

PLACEHOLDERS = {
    "ceo": {"requirements", "claude_md"},
    "staff_engineer": {"requirements", "plan", "claude_md"},
    "developer": {
        "task_id",
        "task_title",
        "spec",
        "acceptance",
        "files",
        "feedback",
        "commands",
        "claude_md",
    },
    "qa": {
        "task_id",
        "task_title",
        "spec",
        "acceptance",
        "files",
        "base_ref",
        "attempt",
        "test_command",
        "claude_md",
        "developer_report",
        "previous_review",
    },
}
SCHEMA_KEYS = {
    "ceo": {"summary", "milestones", "assumptions", "out_of_scope"},
    "staff_engineer": {"tasks", "setup_command", "test_command"},
    "developer": {"summary", "changes", "tests", "left"},
    "qa": {"verdict", "reasons", "test_command", "test_output_summary"},
}


@pytest.mark.parametrize("name", ROLE_NAMES)
def test_packaged_roles_load(name: str, tmp_path: Path) -> None:
    role = load_role(name, tmp_path)  # no override there
    assert role.path == PACKAGED_ACTORS / f"{name}.md"
    assert role.name == name and role.description and role.max_turns >= 10
    assert role.placeholders == PLACEHOLDERS[name]
    assert role.model is None and role.timeout is None
    assert role.model_for(Settings(claude_model="m-1")) == "m-1"
    assert role.timeout_for(Settings(task_timeout=42)) == 42
    assert role.idle_timeout is None
    assert role.idle_timeout_for(Settings(turn_idle_timeout=7)) == 7
    if name in SCHEMA_KEYS:
        assert role.schema is not None and role.schema["type"] == "object"
        assert set(role.schema["required"]) == SCHEMA_KEYS[name]
        assert set(role.schema["properties"]) == SCHEMA_KEYS[name]
        json.dumps(role.schema)
    else:
        assert role.schema is None
    text = render(role, **{key: f"<{key}>" for key in PLACEHOLDERS[name]})
    assert "$" not in text.replace("$$", "")
    for key in PLACEHOLDERS[name]:
        assert f"<{key}>" in text


def test_role_specifics() -> None:
    developer = load_role("developer")
    assert developer.permission_mode == "default"
    assert set(developer.allowed_tools) == {"Read", "Write", "Edit", "Bash"}
    qa = load_role("qa")
    assert qa.schema is not None
    assert qa.schema["properties"]["verdict"]["enum"] == ["approve", "changes_requested"]
    tasks = load_role("staff_engineer").schema
    assert tasks is not None
    item = tasks["properties"]["tasks"]["items"]
    assert set(item["required"]) == {"id", "title", "spec", "deps", "files", "acceptance"}
    for name in ("ceo", "staff_engineer", "qa"):
        assert "Write" not in load_role(name).allowed_tools
        assert "StructuredOutput" in load_role(name).prompt


def write(project: Path, name: str, text: str) -> Path:
    folder = project / ".autonoma" / "actors"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    path.write_text(text)
    return path


GOOD = """+++
description = "mine"
model = "claude-sonnet-x"
allowed_tools = ["Read", "Bash(git diff:*)"]
permission_mode = "plan"
max_turns = 3
timeout = 90
idle_timeout = 30
schema = {type = "object", properties = {ok = {type = "boolean"}}, required = ["ok"]}
+++

Check $task_id and say ${verdict}, costs $$5.
"""


def test_an_override_wins(tmp_path: Path) -> None:
    path = write(tmp_path, "qa", GOOD)
    role = load_role("qa", tmp_path)
    assert role == Role(
        name="qa",
        path=path,
        description="mine",
        allowed_tools=("Read", "Bash(git diff:*)"),
        max_turns=3,
        prompt="Check $task_id and say ${verdict}, costs $$5.\n",
        permission_mode="plan",
        model="claude-sonnet-x",
        timeout=90.0,
        idle_timeout=30.0,
        schema={"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
    )
    assert role.model_for(Settings()) == "claude-sonnet-x"
    assert role.timeout_for(Settings(task_timeout=5)) == 90.0
    assert role.idle_timeout_for(Settings(turn_idle_timeout=5)) == 30.0
    assert (
        render(role, task_id="t7", verdict="yes", unused="x") == "Check t7 and say yes, costs $5.\n"
    )
    assert load_role("developer", tmp_path).path == PACKAGED_ACTORS / "developer.md"
    assert load_role("qa", None).path == PACKAGED_ACTORS / "qa.md"


def test_a_project_may_add_a_role(tmp_path: Path) -> None:
    write(tmp_path, "docs_writer", GOOD.replace("plan", "acceptEdits"))
    assert load_role("docs_writer", tmp_path).permission_mode == "acceptEdits"


def test_schema_as_a_json_string(tmp_path: Path) -> None:
    text = GOOD.replace(
        'schema = {type = "object", properties = {ok = {type = "boolean"}}, required = ["ok"]}',
        'schema = \'\'\'\n{"type": "object", "properties": {"n": {"type": "integer"}}}\n\'\'\'',
    )
    write(tmp_path, "qa", text)
    assert load_role("qa", tmp_path).schema == {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
    }


def test_missing_placeholder_is_named(tmp_path: Path) -> None:
    write(tmp_path, "qa", GOOD)
    role = load_role("qa", tmp_path)
    with pytest.raises(RoleError) as err:
        render(role, task_id="t1")
    assert str(err.value) == f"{role.path}: the prompt needs $verdict, which was not given"


BROKEN = [
    ("no front matter", "just a prompt\n", "must start with a '+++' line"),
    ("empty file", "", "must start with a '+++' line"),
    ("unclosed", "+++\nmax_turns = 3\nprompt\n", "front matter has no closing '+++' line"),
    ("broken toml", "+++\nmax_turns = = 3\n+++\nhi\n", "invalid TOML front matter"),
    ("no prompt", '+++\nallowed_tools = ["Read"]\nmax_turns = 3\n+++\n\n  \n', "no prompt"),
    (
        "unknown key",
        '+++\nallowed_tools = ["Read"]\nmax_turns = 3\ntools = 1\n+++\nhi\n',
        "unknown key 'tools'",
    ),
    ("no tools", "+++\nmax_turns = 3\n+++\nhi\n", "missing key 'allowed_tools'"),
    (
        "tools not a list",
        '+++\nallowed_tools = "Read"\nmax_turns = 3\n+++\nhi\n',
        "'allowed_tools' must be a non-empty list",
    ),
    (
        "bad tool",
        '+++\nallowed_tools = ["Read,Write"]\nmax_turns = 3\n+++\nhi\n',
        "invalid tool name 'Read,Write'",
    ),
    ("no max_turns", '+++\nallowed_tools = ["Read"]\n+++\nhi\n', "missing key 'max_turns'"),
    (
        "max_turns a string",
        '+++\nallowed_tools = ["Read"]\nmax_turns = "3"\n+++\nhi\n',
        "'max_turns' = '3' must be a whole number >= 1",
    ),
    (
        "max_turns zero",
        '+++\nallowed_tools = ["Read"]\nmax_turns = 0\n+++\nhi\n',
        "'max_turns' = 0 must be",
    ),
    (
        "bad mode",
        '+++\nallowed_tools = ["Read"]\nmax_turns = 3\npermission_mode = "yolo"\n+++\nhi\n',
        "'permission_mode' = 'yolo' must be one of",
    ),
    (
        "bad timeout",
        '+++\nallowed_tools = ["Read"]\nmax_turns = 3\ntimeout = -1\n+++\nhi\n',
        "'timeout' = -1 must be a number of seconds > 0",
    ),
    (
        "bad idle timeout",
        '+++\nallowed_tools = ["Read"]\nmax_turns = 3\nidle_timeout = "10m"\n+++\nhi\n',
        "'idle_timeout' = '10m' must be a number of seconds > 0",
    ),
    (
        "empty model",
        '+++\nallowed_tools = ["Read"]\nmax_turns = 3\nmodel = ""\n+++\nhi\n',
        "'model' must be a non-empty string",
    ),
    (
        "model with a space",
        '+++\nallowed_tools = ["Read"]\nmax_turns = 3\nmodel = "claude opus"\n+++\nhi\n',
        "'model' = 'claude opus' must be one word: an alias (opus, sonnet, haiku) or a model id",
    ),
    (
        "model like an option",
        '+++\nallowed_tools = ["Read"]\nmax_turns = 3\nmodel = "--bare"\n+++\nhi\n',
        "'model' = '--bare' must be one word",
    ),
    (
        "schema bad json",
        '+++\nallowed_tools = ["Read"]\nmax_turns = 3\nschema = "{nope"\n+++\nhi\n',
        "'schema' is not valid JSON",
    ),
    (
        "schema not object type",
        '+++\nallowed_tools = ["Read"]\nmax_turns = 3\nschema = {type = "array"}\n+++\nhi\n',
        'the top level must have "type": "object"',
    ),
    (
        "schema a list",
        '+++\nallowed_tools = ["Read"]\nmax_turns = 3\nschema = "[1]"\n+++\nhi\n',
        "'schema' must be a JSON object schema",
    ),
    (
        "schema bad type",
        '+++\nallowed_tools = ["Read"]\nmax_turns = 3\n'
        'schema = {type = "object", properties = {a = {type = "text"}}}\n+++\nhi\n',
        "schema.properties.a.type 'text' is not a JSON schema type",
    ),
    (
        "schema required absent",
        '+++\nallowed_tools = ["Read"]\nmax_turns = 3\n'
        'schema = {type = "object", properties = {}, required = ["a"]}\n+++\nhi\n',
        "schema.required names 'a', which is not in properties",
    ),
    (
        "schema with a date",
        '+++\nallowed_tools = ["Read"]\nmax_turns = 3\n'
        'schema = {type = "object", default = 1979-05-27}\n+++\nhi\n',
        "'schema' cannot be written as JSON",
    ),
    (
        "bad placeholder",
        '+++\nallowed_tools = ["Read"]\nmax_turns = 3\n+++\ncosts $5\n',
        "prompt has an invalid placeholder",
    ),
]


@pytest.mark.parametrize(("case", "text", "problem"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_role_files_are_one_line_errors(
    tmp_path: Path, case: str, text: str, problem: str
) -> None:
    path = write(tmp_path, "developer", text)
    with pytest.raises(RoleError) as err:
        load_role("developer", tmp_path)
    message = str(err.value)
    assert "\n" not in message, case
    assert message.startswith(f"{path}: "), message
    assert problem in message, message


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    path = write(tmp_path, "developer", "")
    path.write_bytes(b"+++\n\xff\n+++\nhi\n")
    with pytest.raises(RoleError, match="not UTF-8 text"):
        load_role("developer", tmp_path)
    with pytest.raises(RoleError, match=r"no such role file \(role 'nobody'\)"):
        load_role("nobody", tmp_path)
    for bad in ("../qa", "QA", "", "a/b"):
        with pytest.raises(RoleError, match="not a role name"):
            load_role(bad, tmp_path)


def test_parse_role_names_the_given_path() -> None:
    with pytest.raises(RoleError, match=r"^somewhere/x\.md: no prompt"):
        parse_role("x", Path("somewhere/x.md"), '+++\nallowed_tools=["Read"]\nmax_turns=1\n+++\n')
