"""``python -m gradcheck``."""
from ._entry import run

run()
