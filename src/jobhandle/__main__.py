"""``python -m jobhandle``: the same as the ``jobhandle`` command."""

from .cli import main

if __name__ == "__main__":
    main()
