"""`python -m minirnn ...` is the `minirnn` command (and `torchrun -m minirnn ...` launches it)."""
import sys

from minirnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
