"""The environment a claude child gets: against the sim nothing else can be reached."""

from __future__ import annotations

from pathlib import Path

import pytest

from autonoma.agents.environment import SIM_API_KEY, child_env

HOSTILE = {
    # what the child may keep
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TERM": "xterm-256color",
    "TMPDIR": "/tmp/x",
    "USER": "me",
    "SHELL": "/bin/bash",
    "IS_SANDBOX": "1",
    "GIT_AUTHOR_NAME": "Me",
    "HOME": "/home/me",
    # a parent claude session
    "CLAUDECODE": "1",
    "CLAUDE_CODE_ENTRYPOINT": "cli",
    "CLAUDE_CODE_SESSION_ID": "parent-session",
    "CLAUDE_CODE_CHILD_SESSION": "1",
    "CLAUDE_CODE_SSE_PORT": "12345",
    "CLAUDE_PROJECT_DIR": "/home/me/elsewhere",
    "CLAUDE_AGENT_SDK_VERSION": "0.1",
    # the user's own claude settings and credentials
    "CLAUDE_CONFIG_DIR": "/home/me/.claude-work",
    "CLAUDE_CODE_MAX_RETRIES": "10",
    "CLAUDE_CODE_OAUTH_TOKEN": "oauth-secret",
    "CLAUDE_CODE_USE_BEDROCK": "1",
    "CLAUDE_CODE_USE_VERTEX": "1",
    "ANTHROPIC_API_KEY": "sk-ant-real",
    "ANTHROPIC_AUTH_TOKEN": "real-bearer",
    "ANTHROPIC_BASE_URL": "https://api.anthropic.com",
    "ANTHROPIC_MODEL": "claude-opus",
    "ANTHROPIC_CUSTOM_HEADERS": "x: y",
    "AWS_ACCESS_KEY_ID": "AKIA",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_BEARER_TOKEN_BEDROCK": "tok",
    "GOOGLE_APPLICATION_CREDENTIALS": "/home/me/gcp.json",
    "OPENAI_API_KEY": "sk-openai",
    "GITHUB_TOKEN": "ghp",
    "MY_SERVICE_SECRET_VALUE": "s",
    "HTTPS_PROXY": "http://proxy:3128",
    "NODE_OPTIONS": "--require /tmp/evil.js",
    "GIT_DIR": "/home/me/other/.git",
    "GIT_INDEX_FILE": "/home/me/other/.git/index",
}


def test_against_the_sim_the_child_gets_exactly_this(tmp_path: Path) -> None:
    env = child_env(HOSTILE, sim_url="http://127.0.0.1:8123", config_dir=tmp_path)
    assert env == {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "xterm-256color",
        "TMPDIR": "/tmp/x",
        "USER": "me",
        "SHELL": "/bin/bash",
        "IS_SANDBOX": "1",
        "GIT_AUTHOR_NAME": "Me",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:8123",
        "ANTHROPIC_API_KEY": SIM_API_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "HOME": str(tmp_path),
        "CLAUDE_CONFIG_DIR": str(tmp_path / ".claude"),
    }


def test_retries_only_when_given(tmp_path: Path) -> None:
    env = child_env(HOSTILE, sim_url="http://localhost:1", config_dir=tmp_path, max_retries=0)
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "0"
    real = child_env(HOSTILE, sim_url=None, max_retries=2)
    assert real["CLAUDE_CODE_MAX_RETRIES"] == "2"
    with pytest.raises(ValueError):
        child_env(HOSTILE, sim_url=None, max_retries=-1)


def test_against_the_sim_whatever_the_parent(tmp_path: Path) -> None:
    parent = {f"ANTHROPIC_{n}": "x" for n in ("A", "VERTEX_PROJECT_ID", "BEDROCK_BASE_URL")}
    parent |= {f"CLAUDE_{n}": "x" for n in ("X", "CODE_API_KEY_HELPER_TTL_MS")}
    parent |= {"SOMETHING_TOKEN": "t", "X_API_KEY": "k", "PASSWORD": "p", "CLOUD_ML_REGION": "r"}
    env = child_env(parent, sim_url="http://[::1]:9/", config_dir=tmp_path)
    assert set(env) == {
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_API_KEY",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        "HOME",
        "CLAUDE_CONFIG_DIR",
    }


@pytest.mark.parametrize(
    "url", ["https://api.anthropic.com", "http://10.0.0.1:80", "ftp://127.0.0.1/", "127.0.0.1:80"]
)
def test_the_sim_must_be_on_loopback(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        child_env({}, sim_url=url, config_dir=tmp_path)


def test_the_sim_needs_a_config_dir() -> None:
    with pytest.raises(ValueError, match="config_dir"):
        child_env({}, sim_url="http://127.0.0.1:1", config_dir=None)


# What claude needs to reach the model, and a shell: kept in every real run.
REAL_KEPT = {
    "PATH",
    "LANG",
    "LC_ALL",
    "TERM",
    "TMPDIR",
    "USER",
    "SHELL",
    "IS_SANDBOX",
    "GIT_AUTHOR_NAME",
    "HOME",
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL",
    "ANTHROPIC_CUSTOM_HEADERS",
    "HTTPS_PROXY",
}
BEDROCK = {
    "CLAUDE_CODE_USE_BEDROCK",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_BEARER_TOKEN_BEDROCK",
}
VERTEX = {"CLAUDE_CODE_USE_VERTEX", "GOOGLE_APPLICATION_CREDENTIALS"}


def _without(*names: str) -> dict[str, str]:
    return {k: v for k, v in HOSTILE.items() if k not in names}


@pytest.mark.parametrize(
    ("parent", "extra", "kept"),
    [
        # Both clouds on: each cloud's credentials come along, nothing else of the user's.
        (HOSTILE, (), REAL_KEPT | BEDROCK | VERTEX),
        # Bedrock off ("0" too): no AWS key reaches an agent.
        (
            _without("CLAUDE_CODE_USE_BEDROCK"),
            (),
            REAL_KEPT | {"CLAUDE_CODE_USE_VERTEX", "GOOGLE_APPLICATION_CREDENTIALS"},
        ),
        (
            {**HOSTILE, "CLAUDE_CODE_USE_BEDROCK": "0"},
            (),
            REAL_KEPT | VERTEX | {"CLAUDE_CODE_USE_BEDROCK"},
        ),
        # Vertex off: no Google credential.
        (_without("CLAUDE_CODE_USE_VERTEX"), (), REAL_KEPT | BEDROCK),
        # Neither: the plain API.
        (_without("CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_BEDROCK"), (), REAL_KEPT),
        # The user's named extras come along; a session or git location variable never does.
        (
            _without("CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_BEDROCK"),
            ("GITHUB_TOKEN", "NOT_SET", "GIT_DIR", "CLAUDECODE"),
            REAL_KEPT | {"GITHUB_TOKEN"},
        ),
        ({}, (), set()),
    ],
)
def test_a_real_run_gets_an_allowlist(
    parent: dict[str, str], extra: tuple[str, ...], kept: set[str]
) -> None:
    env = child_env(parent, sim_url=None, extra=extra)
    assert env == {k: v for k, v in parent.items() if k in kept}


def test_a_real_run_drops_every_other_credential() -> None:
    parent = {
        **HOSTILE,
        "DATABASE_URL": "postgres://u:p@db/x",
        "ANTHROPIC_DEFAULT_OPUS_MODEL": "o",
        "ANTHROPIC_MODEL_X": "x",
        "http_proxy": "http://p:1",
        "NODE_EXTRA_CA_CERTS": "/ca.pem",
        "CLOUD_ML_REGION": "us",
    }
    env = child_env(parent, sim_url=None)
    for name in (
        "GITHUB_TOKEN",
        "OPENAI_API_KEY",
        "DATABASE_URL",
        "MY_SERVICE_SECRET_VALUE",
        "NODE_OPTIONS",
        "CLAUDE_CODE_MAX_RETRIES",
    ):
        assert name not in env
    for name in (
        "ANTHROPIC_DEFAULT_OPUS_MODEL",
        "ANTHROPIC_MODEL_X",
        "http_proxy",
        "NODE_EXTRA_CA_CERTS",
        "CLOUD_ML_REGION",
    ):
        assert env[name] == parent[name]
    assert env["ANTHROPIC_API_KEY"] == "sk-ant-real"
    assert env["HOME"] == "/home/me"


def test_the_parent_is_not_changed(tmp_path: Path) -> None:
    parent = dict(HOSTILE)
    child_env(parent, sim_url="http://127.0.0.1:1", config_dir=tmp_path, max_retries=1)
    child_env(parent, sim_url=None)
    assert parent == HOSTILE
