"""`python -m eblocks` is the `eblocks` command."""

from eblocks.cli import main

main()
