"""`python -m ksi` is the `ksi` command."""

from ksi.cli import main

if __name__ == "__main__":
    main()
