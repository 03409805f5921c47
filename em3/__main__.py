import sys

from em3.cli import main

sys.exit(main())
