"""Files shipped inside the package (role files, samples, the sim's example scenario).

They are found through `importlib.resources`, so a wheel installed anywhere has them,
and an editable install of a source checkout finds them in the source tree.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def packaged(*parts: str) -> Path:
    """The file or folder ``autonoma/<parts...>`` as a filesystem path (it may not exist).

    Raises RuntimeError when Autonoma is installed in a form without filesystem paths
    (a zip archive): claude and git are handed real paths, so that is not supported.
    """
    found = files("autonoma").joinpath(*parts)
    if not isinstance(found, Path):
        raise RuntimeError(
            f"autonoma is installed as {type(found).__name__}, not as files: "
            "install it from the wheel with pip"
        )
    return found


__all__ = ["packaged"]
