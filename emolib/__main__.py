import sys

from emolib.cli import main

sys.exit(main())
