import sys

from metacurr.cli import main

sys.exit(main())
