"""``python -m runner.dbchild``: the database child's entry point (``dbjob.main``)."""

import sys

from runner.dbchild.dbjob import main

sys.exit(main())
