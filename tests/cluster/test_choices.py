"""Which agents go to the cluster, and what Ray is given for the setting: tables."""

from __future__ import annotations

import pytest

from autonoma.cluster.connect import address_for
from autonoma.config import Settings
from autonoma.workflow.crew import (
    CEO,
    STAFF_ENGINEER,
    crew_intensity,
    developer_names,
    is_remote,
    qa_names,
)


@pytest.mark.parametrize(
    ("agent", "remote"),
    [
        ("developer-1", True),
        ("developer-12", True),
        ("qa-1", True),
        ("ceo", False),
        ("staff_engineer", False),
        ("governor", False),
    ],
)
def test_developers_and_qa_run_on_the_cluster_the_planners_on_the_head(
    agent: str, remote: bool
) -> None:
    assert is_remote(agent) is remote


@pytest.mark.parametrize(
    ("setting", "address"),
    [
        ("auto", "auto"),
        (" AUTO ", "auto"),
        ("10.0.0.5:6379", "10.0.0.5:6379"),
        ("ray://head:10001", "ray://head:10001"),
    ],
)
def test_the_setting_is_the_address_ray_joins(setting: str, address: str) -> None:
    assert address_for(setting) == address


@pytest.mark.parametrize(
    ("cluster", "intensity", "workers", "allowed"),
    [
        # Local: OTP's count as set.
        ("", 3, 4, 3),
        ("", 0, 4, 0),
        # A cluster: a node lost takes every agent it held at once; each remote agent
        # (4 developers and 4 QA) may be lost once more in the period.
        ("auto", 3, 4, 3 + 8),
        ("auto", 0, 1, 0 + 2),
    ],
)
def test_a_clusters_crew_survives_losing_every_remote_agent_at_once(
    cluster: str, intensity: int, workers: int, allowed: int
) -> None:
    names = [CEO, STAFF_ENGINEER, *qa_names(workers), *developer_names(workers)]
    settings = Settings(cluster=cluster, restart_intensity=intensity)
    assert crew_intensity(settings, names) == allowed
