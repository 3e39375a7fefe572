"""One-hot "hihell" -> "ihello" with an Elman RNN. Same as `minirnn train hihell`."""
import sys

from minirnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "hihell", *sys.argv[1:]]))
