"""ctest entry point: run test modules with unittest; exit 77 (ctest's
skip code) when every test was skipped, after printing why."""

from __future__ import annotations

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(modules: list) -> int:
    """Run the modules; 0 ok, 1 failed, 77 all skipped."""
    import mp_util  # noqa: F401  (puts the package of this tree on sys.path)
    suite = unittest.defaultTestLoader.loadTestsFromNames(modules)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    if not result.wasSuccessful():
        return 1
    if result.testsRun and len(result.skipped) == result.testsRun:
        for test, reason in result.skipped:
            print(f"SKIPPED {test.id()}: {reason}")
        return 77
    for test, reason in result.skipped:
        print(f"skipped {test.id()}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
