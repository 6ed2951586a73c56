"""``python -m producer``: the ``asr`` command line (:mod:`producer.cli`)."""

import sys

from producer.cli import main

sys.exit(main(prog="python -m producer"))
