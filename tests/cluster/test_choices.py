"""Which agents go to the cluster, and what Ray is given for the setting: tables."""

from __future__ import annotations

import pytest

from autonoma.cluster.connect import address_for
from autonoma.workflow.crew import is_remote


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
