import sys

from emolib.commands import main

sys.exit(main())
