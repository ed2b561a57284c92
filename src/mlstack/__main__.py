"""`python -m mlstack`: the same as the `mlstack` console script."""

from mlstack.cli.main import main

main()
