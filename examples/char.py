"""The char-rnn tutorial (characters of tiny-Shakespeare); arguments as `minirnn train char`."""
import sys

from minirnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "char", *sys.argv[1:]]))
