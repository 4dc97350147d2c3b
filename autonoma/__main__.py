"""``python -m autonoma`` is the ``autonoma`` command."""

from autonoma.cli import main

main()
