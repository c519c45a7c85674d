"""The eval-only pipeline."""
