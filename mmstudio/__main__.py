"""Entry point of `python -m mmstudio`."""

import sys

from mmstudio.cli import main

if __name__ == "__main__":
    sys.exit(main())
