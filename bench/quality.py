"""The quality benchmark (issue 5): the same as `em3 bench quality`; see em3/bench/quality.py and docs/benchmarks.md.

.venv/bin/python bench/quality.py [--quick] [--seeds 5] [--workers 2] [--out bench/results/quality.json]
"""

import sys

from em3.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "quality", *sys.argv[1:]]))
