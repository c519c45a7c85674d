"""Compiles every pipeline to pipelines/compiled/{kfp,vertex}/; `--check` fails when committed specs are stale."""

import sys

from kfp_llmops.pipelines.compiling import main

if __name__ == "__main__":
    sys.exit(main())
