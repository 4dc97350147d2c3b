"""Joining a Ray cluster: the one module that imports Ray when a run starts.

Ray is an optional extra. Without a ``cluster`` setting nothing here runs and Ray is
never imported; with one and Ray missing, `require_ray` says how to get it in one line.
"""

from __future__ import annotations

import importlib
import logging

from autonoma.config import ConfigError

INSTALL = "pip install 'autonoma[ray]'"
"""How to get Ray, as the one line says it."""


def require_ray(source: str, option: str | None = None) -> None:
    """Import Ray or raise `ConfigError` (exit 2) naming the setting and the extra.

    ``source``: where the ``cluster`` setting comes from; ``option``: the ``--cluster``
    value when the command line gave it (then the line names ``--cluster``).
    """
    try:
        importlib.import_module("ray")
    except ImportError:
        where = "--cluster" if option is not None else f"cluster ({source})"
        raise ConfigError(
            f"{where}: running agents on a Ray cluster needs Ray, which is not installed: {INSTALL}"
        ) from None


def address_for(setting: str) -> str:
    """What `ray.init` is given for the ``cluster`` setting: ``auto`` or the address."""
    return "auto" if setting.strip().lower() == "auto" else setting.strip()


def connect(setting: str) -> None:
    """Join the cluster ``setting`` names as a driver (blocks for its handshake, seconds).

    Raises `ConfigError` (one line) when no cluster answers there.
    """
    import ray

    if ray.is_initialized():
        return
    address = address_for(setting)
    try:
        ray.init(
            address=address,
            # The run's own log says what happens; Ray's worker logs stay on the nodes.
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as error:
        text = str(error).strip().splitlines()
        raise ConfigError(
            f"cluster {setting!r}: cannot join the Ray cluster there: "
            f"{text[0] if text else type(error).__name__}"
        ) from None


def disconnect() -> None:
    """Leave the cluster (the actors this driver made go with it); never raises."""
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    except Exception:  # leaving must not hide how the run ended
        logging.getLogger("autonoma.cluster").debug("ray.shutdown failed", exc_info=True)


__all__ = ["INSTALL", "address_for", "connect", "disconnect", "require_ray"]
