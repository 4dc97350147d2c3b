"""The argv of one claude turn: every flag, and the refusals in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autonoma.agents.command import CommandError, build_argv, role_line
from autonoma.agents.roles import Role, load_role
from autonoma.config import Settings

CLAUDE = Path("/opt/claude/bin/claude")
SID = "0b0c0d0e-0000-4000-8000-000000000001"


def role(**changes: object) -> Role:
    fields: dict[str, object] = {
        "name": "developer",
        "path": Path("actors/developer.md"),
        "description": "d",
        "allowed_tools": ("Read", "Write", "Bash(git diff:*)"),
        "max_turns": 7,
        "prompt": "p",
    }
    fields.update(changes)
    return Role(**fields)  # type: ignore[arg-type]


def argv(r: Role | None = None, prompt: str = "Do it", **kw: object) -> list[str]:
    options: dict[str, object] = {
        "session_id": SID,
        "resume": False,
        "settings": Settings(claude_model="model-default"),
        "task_id": "t1",
        "child_env": {},
    }
    options.update(kw)
    return build_argv(CLAUDE, r or role(), prompt, **options)  # type: ignore[arg-type]


def value(args: list[str], flag: str) -> str:
    assert args.count(flag) == 1, flag
    return args[args.index(flag) + 1]


@pytest.fixture(autouse=True)
def not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("autonoma.agents.command.os.geteuid", lambda: 1000)


def test_a_first_turn_in_full() -> None:
    assert argv() == [
        str(CLAUDE),
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--session-id",
        SID,
        "--model",
        "model-default",
        "--fallback-model",
        "sonnet",
        "--setting-sources",
        "project,local",
        "--strict-mcp-config",
        "--permission-mode",
        "default",
        "--max-turns",
        "7",
        "--append-system-prompt",
        "ROLE: developer TASK: t1",
        "--allowedTools",
        "Read",
        "Write",
        "Bash(git diff:*)",
        "--",
        "Do it",
    ]


def test_resume_instead_of_session_id() -> None:
    args = argv(resume=True)
    assert value(args, "--resume") == SID
    assert "--session-id" not in args


def test_model_from_the_role_wins() -> None:
    assert value(argv(role(model="claude-x")), "--model") == "claude-x"


@pytest.mark.parametrize(
    ("role_model", "claude_model", "fallback", "want_model", "want_fallback"),
    [
        (None, "opus", "sonnet", "opus", "sonnet"),  # the defaults
        ("haiku", "opus", "sonnet", "haiku", "sonnet"),  # the role's model wins
        (None, "claude-opus-4-5-20251101", "sonnet", "claude-opus-4-5-20251101", "sonnet"),
        (None, "opus", "", "opus", None),  # "" = no fallback
        (None, "opus", "none", "opus", None),  # so does "none"
        ("sonnet", "opus", "sonnet", "sonnet", None),  # never the main model itself
    ],
)
def test_model_and_fallback(
    role_model: str | None,
    claude_model: str,
    fallback: str,
    want_model: str,
    want_fallback: str | None,
) -> None:
    settings = Settings(claude_model=claude_model, fallback_model=fallback)
    args = argv(role(model=role_model), settings=settings)
    assert value(args, "--model") == want_model
    if want_fallback is None:
        assert "--fallback-model" not in args
    else:
        assert value(args, "--fallback-model") == want_fallback


@pytest.mark.parametrize("bad", ["opus 4", "--dangerously-skip-permissions", "a\nb"])
def test_a_model_that_is_not_one_word_is_refused(bad: str) -> None:
    with pytest.raises(CommandError, match="one word"):
        argv(settings=Settings(claude_model=bad))
    with pytest.raises(CommandError, match="one word"):
        argv(settings=Settings(fallback_model=bad))


def test_the_users_own_claude_config_only_when_asked() -> None:
    isolated = argv()
    assert value(isolated, "--setting-sources") == "project,local"
    assert "--strict-mcp-config" in isolated and "--mcp-config" not in isolated
    # Before --allowedTools, which takes every value up to "--".
    assert isolated.index("--strict-mcp-config") < isolated.index("--allowedTools")
    own = argv(settings=Settings(claude_model="m", user_claude_config=True))
    assert "--setting-sources" not in own and "--strict-mcp-config" not in own


def test_permission_mode_and_max_turns_from_the_role() -> None:
    args = argv(role(permission_mode="default", max_turns=99))
    assert value(args, "--permission-mode") == "default"
    assert value(args, "--max-turns") == "99"


def test_json_schema_only_with_a_schema() -> None:
    assert "--json-schema" not in argv()
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    text = value(argv(role(schema=schema)), "--json-schema")
    assert json.loads(text) == schema and "\n" not in text and " " not in text


def test_append_system_prompt_names_role_and_task() -> None:
    assert value(argv(task_id=None), "--append-system-prompt") == "ROLE: developer"
    assert role_line("qa", "t12") == "ROLE: qa TASK: t12"
    with pytest.raises(CommandError, match="one word"):
        argv(task_id="t 1")


def test_budget_only_when_set() -> None:
    assert "--max-budget-usd" not in argv()
    args = argv(settings=Settings(task_budget_usd=0.25))
    assert value(args, "--max-budget-usd") == "0.25"
    assert value(argv(settings=Settings(task_budget_usd=2)), "--max-budget-usd") == "2.0"


def test_skip_permissions_only_when_set() -> None:
    assert "--dangerously-skip-permissions" not in argv()
    args = argv(settings=Settings(dangerously_skip_permissions=True))
    assert "--dangerously-skip-permissions" in args
    assert "--permission-mode" not in args
    assert args[args.index("--allowedTools") + 1 : args.index("--")] == [
        "Read",
        "Write",
        "Bash(git diff:*)",
    ]


def test_skip_permissions_as_root_needs_is_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("autonoma.agents.command.os.geteuid", lambda: 0)
    skip = Settings(dangerously_skip_permissions=True)
    for env in ({}, {"IS_SANDBOX": "0"}, {"IS_SANDBOX": "yes"}):
        with pytest.raises(CommandError) as err:
            argv(settings=skip, child_env=env)
        message = str(err.value)
        assert "\n" not in message
        assert message.startswith("claude refuses --dangerously-skip-permissions when run as root")
        assert "IS_SANDBOX=1" in message and "AUTONOMA_DANGEROUSLY_SKIP_PERMISSIONS" in message
    assert "--dangerously-skip-permissions" in argv(settings=skip, child_env={"IS_SANDBOX": "1"})
    assert "--permission-mode" in argv()  # the setting off: fine as root
    with pytest.raises(CommandError, match="bypassPermissions"):
        argv(role(permission_mode="bypassPermissions"))


def test_child_env_defaults_to_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("autonoma.agents.command.os.geteuid", lambda: 0)
    skip = Settings(dangerously_skip_permissions=True)
    monkeypatch.setenv("IS_SANDBOX", "1")
    assert "--dangerously-skip-permissions" in argv(settings=skip, child_env=None)
    monkeypatch.delenv("IS_SANDBOX")
    with pytest.raises(CommandError):
        argv(settings=skip, child_env=None)


def test_the_prompt_is_last_after_a_double_dash() -> None:
    args = argv(prompt="--help me\nplease")
    assert args[-2:] == ["--", "--help me\nplease"]


def test_refusals() -> None:
    with pytest.raises(CommandError, match="not a UUID"):
        argv(session_id="s-1")
    with pytest.raises(CommandError, match="NUL"):
        argv(prompt="a\0b")
    with pytest.raises(CommandError, match="over 120000 bytes"):
        argv(prompt="é" * 60_001)


def test_with_the_packaged_qa_role() -> None:
    qa = load_role("qa")
    args = argv(qa, settings=Settings(claude_model="m"))
    assert value(args, "--permission-mode") == "default"
    assert value(args, "--max-turns") == str(qa.max_turns)
    assert json.loads(value(args, "--json-schema")) == qa.schema
    assert value(args, "--append-system-prompt") == "ROLE: qa TASK: t1"
