"""Settings: environment over config.toml over defaults, and one clear line for bad values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from autonoma import config
from autonoma.config import ConfigError, Settings, load_settings

README = Path(__file__).resolve().parents[1] / "README.md"


def write_toml(root: Path, text: str) -> Path:
    path = config.config_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_are_the_seeds() -> None:
    settings = load_settings(None, environ={})
    assert settings == Settings()
    assert settings.claude_model == "opus"
    assert settings.fallback_model == "sonnet"
    assert settings.user_claude_config is False
    assert settings.max_workers == 5
    assert settings.max_retries == 3
    assert settings.task_timeout == 3600.0
    assert settings.turn_idle_timeout == 600.0
    assert settings.test_timeout == 1800.0
    assert settings.dangerously_skip_permissions is False


def test_environment_wins_over_toml_which_wins_over_defaults(tmp_path: Path) -> None:
    write_toml(tmp_path, "max_workers = 2\nmax_retries = 7\n")
    settings = load_settings(tmp_path, environ={"AUTONOMA_MAX_WORKERS": "4"})
    assert settings.max_workers == 4
    assert settings.max_retries == 7
    assert settings.task_timeout == 3600.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False), ("off", False)],
)
def test_boolean_words(text: str, expected: bool) -> None:
    environ = {"AUTONOMA_DANGEROUSLY_SKIP_PERMISSIONS": text}
    assert load_settings(None, environ).dangerously_skip_permissions is expected


def test_an_empty_variable_counts_as_unset() -> None:
    assert load_settings(None, {"AUTONOMA_MAX_WORKERS": ""}).max_workers == 5


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AUTONOMA_MAX_WORKERS", "abc", "AUTONOMA_MAX_WORKERS='abc': must be a whole number >= 1"),
        ("AUTONOMA_MAX_WORKERS", "0", "AUTONOMA_MAX_WORKERS='0': must be a whole number >= 1"),
        ("AUTONOMA_MAX_WORKERS", "-3", "AUTONOMA_MAX_WORKERS='-3': must be a whole number >= 1"),
        ("AUTONOMA_MAX_WORKERS", "2.5", "must be a whole number >= 1"),
        ("AUTONOMA_TASK_TIMEOUT", "0", "AUTONOMA_TASK_TIMEOUT='0': must be a number > 0"),
        ("AUTONOMA_TASK_TIMEOUT", "nan", "must be a number > 0"),
        ("AUTONOMA_DANGEROUSLY_SKIP_PERMISSIONS", "maybe", "must be true or false"),
        ("AUTONOMA_CLAUDE_MODEL", "opus 4", "AUTONOMA_CLAUDE_MODEL='opus 4': must be one word"),
        ("AUTONOMA_FALLBACK_MODEL", "--x", 'must be one word (a model alias or id) or ""'),
        ("AUTONOMA_USER_CLAUDE_CONFIG", "maybe", "must be true or false"),
        ("AUTONOMA_AGENT_ENV", "FOO,BAR BAZ", "AUTONOMA_AGENT_ENV='FOO,BAR BAZ': must be comma"),
        ("AUTONOMA_AGENT_ENV", "1X", "must be comma-separated variable names"),
        ("AUTONOMA_AGENT_ENV", "A=B", "must be comma-separated variable names"),
        (
            "AUTONOMA_MAX_WORKER",
            "3",
            "unknown variable AUTONOMA_MAX_WORKER (did you mean AUTONOMA_MAX_WORKERS?)",
        ),
    ],
)
def test_bad_environment_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {name: value})
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_workrs = 3\n", "unknown key 'max_workrs' (did you mean max_workers?)"),
        ("max_workers = 'three'\n", "'max_workers' = 'three' must be a whole number >= 1"),
        ("max_workers = true\n", "'max_workers' = True must be a whole number >= 1"),
        ("max_workers = 0\n", "must be a whole number >= 1"),
        ("task_timeout = -1\n", "must be a number > 0"),
        ("dangerously_skip_permissions = 1\n", "must be true or false"),
        ('claude_model = ""\n', "'claude_model' = '' must be one word (a model alias or id)"),
        ('claude_model = "claude opus"\n', "must be one word"),
        ("fallback_model = 4\n", "must be one word"),
        ('user_claude_config = "yes"\n', "must be true or false"),
        ("[section]\nx = 1\n", "unknown key 'section'"),
        ('agent_env = "FOO;BAR"\n', "'agent_env' = 'FOO;BAR' must be comma-separated"),
        ('agent_env = ["FOO"]\n', "must be comma-separated variable names"),
        ("max_workers = = 3\n", "invalid TOML"),
    ],
)
def test_bad_toml_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write_toml(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, {})
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_models_and_user_config_from_toml_and_environment(tmp_path: Path) -> None:
    text = 'claude_model = " haiku "\nfallback_model = ""\nuser_claude_config = true\n'
    write_toml(tmp_path, text)
    settings = load_settings(tmp_path, {})
    assert (settings.claude_model, settings.fallback_model) == ("haiku", "")
    assert settings.user_claude_config is True
    environ = {"AUTONOMA_CLAUDE_MODEL": "claude-sonnet-4-5", "AUTONOMA_FALLBACK_MODEL": "none"}
    settings = load_settings(tmp_path, environ)
    assert (settings.claude_model, settings.fallback_model) == ("claude-sonnet-4-5", "none")


def test_agent_env_names_are_normalised(tmp_path: Path) -> None:
    write_toml(tmp_path, 'agent_env = " FOO , _BAR1,"\n')
    assert load_settings(tmp_path, {}).agent_env == "FOO,_BAR1"
    assert config.variable_names(load_settings(tmp_path, {}).agent_env) == ("FOO", "_BAR1")
    assert load_settings(tmp_path, {"AUTONOMA_AGENT_ENV": "X"}).agent_env == "X"


def test_toml_floats_accept_integers(tmp_path: Path) -> None:
    write_toml(tmp_path, "task_timeout = 30\nbudget_usd = 2.5\n")
    settings = load_settings(tmp_path, {})
    assert settings.task_timeout == 30.0
    assert settings.budget_usd == 2.5


def test_commented_defaults_parse_back_to_the_defaults(tmp_path: Path) -> None:
    write_toml(tmp_path, config.commented_defaults())
    assert load_settings(tmp_path, {}) == Settings()
    uncommented = "\n".join(
        line[2:] for line in config.commented_defaults().splitlines() if " = " in line
    )
    write_toml(tmp_path, uncommented)
    assert load_settings(tmp_path, {}) == Settings()


def test_readme_table_is_the_generated_one() -> None:
    text = README.read_text()
    match = re.search(r"<!-- config-table.*?-->\n(.*?)\n<!-- /config-table -->", text, re.S)
    assert match is not None, "README.md lost its config-table markers"
    assert match.group(1) == config.markdown_table()
