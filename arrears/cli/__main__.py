"""`python -m arrears.cli`: the same as the `arrears` command."""

from arrears.cli import main

main()
