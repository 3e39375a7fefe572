"""The sentences tutorial; arguments as `minirnn train sentences` (try --help)."""
import sys

from minirnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "sentences", *sys.argv[1:]]))
