import sys

from kfp_llmops.cli import main

sys.exit(main())
