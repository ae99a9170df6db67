"""`python -m recorder build|verify|list`: what the server runs to build an archive off its event loop."""

import sys

from recorder.cli import main

if __name__ == "__main__":
    sys.exit(main())
