"""`python -m mlstack.tracking.collation check|convert`: see cli."""

from mlstack.tracking.collation.cli import main

if __name__ == "__main__":
    main()
