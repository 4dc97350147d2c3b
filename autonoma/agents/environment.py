"""The environment of a ``claude`` child, built on purpose.

Against the simulated model (tests, the demo) the child gets an allowlist of the
parent's variables plus what points it at the sim: whatever the parent holds
(``ANTHROPIC_AUTH_TOKEN``, which wins over an API key, cloud credentials, a proxy,
``CLAUDE_CODE_USE_BEDROCK``, ...), the child can reach no model but the sim.

For real runs the child gets an allowlist too (`REAL_KEEP`): what claude needs to
reach the model (its authentication, base URL, model names, proxy and certificates;
the Bedrock or Vertex variables only when that mode is on), the basics of a shell
(``HOME``, ``PATH``, locale, ...) and the git identity, plus the variables the user
names in the ``agent_env`` setting. Everything else of the user's (``GITHUB_TOKEN``,
AWS keys when Bedrock is off, ``DATABASE_URL``, ...) never reaches an agent, nor the
set-up and test commands Autonoma runs with the same environment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

SIM_API_KEY = "sk-ant-autonoma-sim-not-a-real-key"

# Kept from the parent against the sim (and nothing else).
SIM_KEEP: frozenset[str] = frozenset(
    {
        "PATH",
        "LANG",
        "LANGUAGE",
        "TERM",
        "TMPDIR",
        "TZ",
        "USER",
        "LOGNAME",
        "SHELL",
        "IS_SANDBOX",
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    }
)
SIM_KEEP_PREFIXES: tuple[str, ...] = ("LC_",)

# What a claude session sets for its children (claude 2.1.331), dropped for real runs.
SESSION_VARIABLES: frozenset[str] = frozenset(
    {
        "CLAUDECODE",
        "CLAUDE_CODE_ENTRYPOINT",
        "CLAUDE_CODE_SESSION_ID",
        "CLAUDE_CODE_CHILD_SESSION",
        "CLAUDE_CODE_CHILD_NOTES_DIR",
        "CLAUDE_CODE_SESSION_ATTENDED",
        "CLAUDE_CODE_LAUNCHED_BY_SESSION_IDS",
        "CLAUDE_CODE_BRIDGE_SESSION_ID",
        "CLAUDE_CODE_SSE_PORT",
        "CLAUDE_CODE_EXECPATH",
        "CLAUDE_CODE_TASK_LIST_ID",
        "CLAUDE_AGENT_SDK_VERSION",
        "CLAUDE_PID",
        "CLAUDE_EFFORT",
        "CLAUDE_PROJECT_DIR",
        "CLAUDE_ENV_FILE",
        "CLAUDE_JOB_DIR",
    }
)

# Git variables that locate a repository or index: inherited from a git hook, they
# would make an agent's git commands act on another repository than its worktree.
GIT_LOCATION_VARIABLES: frozenset[str] = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_NAMESPACE",
        "GIT_PREFIX",
    }
)

# Kept from the parent in a real run: what claude needs to reach the model, and a shell.
REAL_KEEP: frozenset[str] = SIM_KEEP | frozenset(
    {
        "HOME",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_CUSTOM_HEADERS",
        "ANTHROPIC_SMALL_FAST_MODEL",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "CLAUDE_CODE_USE_BEDROCK",
        "CLAUDE_CODE_USE_VERTEX",
        "CLAUDE_CONFIG_DIR",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "NO_PROXY",
        "https_proxy",
        "http_proxy",
        "no_proxy",
        "NODE_EXTRA_CA_CERTS",
        "SSL_CERT_FILE",
    }
)
REAL_KEEP_PREFIXES: tuple[str, ...] = (*SIM_KEEP_PREFIXES, "ANTHROPIC_MODEL", "ANTHROPIC_DEFAULT_")
# Only when claude talks to the model through that cloud (the mode variable is set).
BEDROCK_PREFIXES: tuple[str, ...] = ("AWS_", "ANTHROPIC_BEDROCK_")
BEDROCK_KEEP: frozenset[str] = frozenset({"CLAUDE_CODE_SKIP_BEDROCK_AUTH"})
VERTEX_PREFIXES: tuple[str, ...] = ("GOOGLE_", "ANTHROPIC_VERTEX_", "VERTEX_REGION_")
VERTEX_KEEP: frozenset[str] = frozenset({"CLOUD_ML_REGION", "CLAUDE_CODE_SKIP_VERTEX_AUTH"})
_OFF = frozenset({"", "0", "false", "no", "off"})

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def child_env(
    parent: Mapping[str, str],
    *,
    sim_url: str | None,
    config_dir: Path | None = None,
    max_retries: int | None = None,
    extra: Iterable[str] = (),
) -> dict[str, str]:
    """The environment of a ``claude`` child.

    With ``sim_url`` (a loopback URL): the sim's variables, ``HOME`` = ``config_dir``
    and ``CLAUDE_CONFIG_DIR`` = ``config_dir/.claude`` (one folder per run, so that
    ``--resume`` finds earlier turns), and only the `SIM_KEEP` variables of the parent.
    Without it, for a real run: the parent's `REAL_KEEP` variables (the cloud ones only
    in that cloud's mode) and the ``extra`` names the user allowed (``agent_env``);
    extras never bring back a parent session's or a git location variable.
    ``max_retries`` sets
    ``CLAUDE_CODE_MAX_RETRIES``; otherwise it is never set (nor inherited, for the sim).
    """
    if max_retries is not None and max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, not {max_retries}")
    if sim_url is None:
        env = _real_env(parent, frozenset(extra))
    else:
        env = _sim_env(parent, sim_url, config_dir)
    if max_retries is not None:
        env["CLAUDE_CODE_MAX_RETRIES"] = str(max_retries)
    return env


def _on(parent: Mapping[str, str], name: str) -> bool:
    return parent.get(name, "").strip().lower() not in _OFF


def _real_env(parent: Mapping[str, str], extra: frozenset[str]) -> dict[str, str]:
    keep = set(REAL_KEEP) | extra
    prefixes = list(REAL_KEEP_PREFIXES)
    if _on(parent, "CLAUDE_CODE_USE_BEDROCK"):
        keep |= BEDROCK_KEEP
        prefixes += BEDROCK_PREFIXES
    if _on(parent, "CLAUDE_CODE_USE_VERTEX"):
        keep |= VERTEX_KEEP
        prefixes += VERTEX_PREFIXES
    chosen = tuple(prefixes)
    return {
        name: value
        for name, value in parent.items()
        if (name in keep or name.startswith(chosen))
        and name not in SESSION_VARIABLES
        and name not in GIT_LOCATION_VARIABLES
    }


def _sim_env(parent: Mapping[str, str], sim_url: str, config_dir: Path | None) -> dict[str, str]:
    if config_dir is None:
        raise ValueError("a run against the sim needs its own config_dir")
    url = urlsplit(sim_url)
    if url.scheme not in ("http", "https") or url.hostname not in _LOOPBACK:
        raise ValueError(f"the sim must listen on loopback, not {sim_url!r}")
    env = {
        name: value
        for name, value in parent.items()
        if name in SIM_KEEP or name.startswith(SIM_KEEP_PREFIXES)
    }
    env.update(
        {
            "ANTHROPIC_BASE_URL": sim_url,
            "ANTHROPIC_API_KEY": SIM_API_KEY,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "HOME": str(config_dir),
            "CLAUDE_CONFIG_DIR": str(config_dir / ".claude"),
        }
    )
    return env
