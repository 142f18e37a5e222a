import sys

from devserver.cli import main

sys.exit(main())
