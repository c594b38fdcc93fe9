"""``python -m proofs_numeric [--instances N] [--budget-seconds S] [--out DIR]``."""
import sys

from gradcheck.cli import main

sys.exit(main(["prove", *sys.argv[1:]]))
