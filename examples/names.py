"""The names tutorial; arguments as `minirnn train names` (try --help)."""
import sys

from minirnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "names", *sys.argv[1:]]))
