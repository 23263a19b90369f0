"""`python -m snncompile` is the same as the `snncompile` command."""

from snncompile.cli import main

main()
