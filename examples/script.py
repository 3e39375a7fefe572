"""The script tutorial; arguments as `minirnn train script` (try --help)."""
import sys

from minirnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "script", *sys.argv[1:]]))
