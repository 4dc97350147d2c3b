"""The sliding restart window, as OTP's add_restart/1 keeps it."""

from __future__ import annotations

import pytest

from autonoma.runtime.intensity import RestartWindow


def test_allows_up_to_intensity_then_refuses() -> None:
    window = RestartWindow(intensity=2, period=5)
    assert window.add(0.0)
    assert window.add(1.0)
    assert not window.add(2.0)
    assert window.count == 3


def test_boundary_is_inclusive() -> None:
    # A restart exactly `period` seconds ago still counts.
    window = RestartWindow(intensity=1, period=5)
    assert window.add(0.0)
    assert not window.add(5.0)


def test_just_past_the_boundary_is_forgotten() -> None:
    window = RestartWindow(intensity=1, period=5)
    assert window.add(0.0)
    assert window.add(5.001)
    assert window.count == 1


def test_spread_out_restarts_never_add_up() -> None:
    # OTP: with intensity 1 and period 1, a child killed every 2 s restarts forever.
    window = RestartWindow(intensity=1, period=1)
    assert all(window.add(t * 2.0) for t in range(100))


def test_zero_intensity_gives_up_at_once() -> None:
    assert not RestartWindow(intensity=0, period=5).add(0.0)


def test_clear_forgets() -> None:
    window = RestartWindow(intensity=1, period=5)
    window.add(0.0)
    window.add(1.0)
    window.clear()
    assert window.count == 0
    assert window.add(2.0)


@pytest.mark.parametrize(("intensity", "period"), [(-1, 5.0), (1, 0.0), (1, -1.0)])
def test_rejects_bad_settings(intensity: int, period: float) -> None:
    with pytest.raises(ValueError):
        RestartWindow(intensity, period)
