"""``python -m sltd``: the same as the ``sltd`` command."""

from sltd.cli import main

if __name__ == "__main__":
    main()
