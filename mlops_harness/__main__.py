"""``python /path/to/mlops_harness ARGS`` (or ``python -m mlops_harness ARGS``): run the harness.

Run as a folder, this file is ``__main__`` outside its package (``__package__`` is empty) and only the
package's own folder is on ``sys.path``: the folder above it is put first so ``mlops_harness`` imports as a
package (pip does the same). The runner takes both folders off ``sys.path`` again before the user's script
runs, so neither shadows the user's modules.
"""

import os
import sys

if not __package__:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))

from mlops_harness.leave import leave  # noqa: E402
from mlops_harness.runner import main  # noqa: E402

if __name__ == "__main__":
    leave(main())
