"""``python -m runner.dbchild``: the database child's entry point.

It makes itself non-dumpable before anything else is imported (``handshake.py``),
then runs ``dbjob.main``, which receives the job.
"""

import sys

from runner.dbchild.handshake import make_undumpable

make_undumpable()

from runner.dbchild.dbjob import main  # noqa: E402 - after the prctl, on purpose

sys.exit(main())
