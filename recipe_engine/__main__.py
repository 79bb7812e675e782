import sys

from recipe_engine.cli.main import main

sys.exit(main())
