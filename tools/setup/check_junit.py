"""Fail when a pytest JUnit XML report shows that no test actually ran.

pytest already exits 5 when it collects nothing; this also catches runs in which
every collected test was skipped (or the report is missing or empty).
Usage: python tools/setup/check_junit.py build/test/junit.xml
"""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    report = Path(argv[1])
    if not report.is_file():
        print(f"[junit] no report at {report}: no test ran", file=sys.stderr)
        return 1
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = sum(int(s.get("tests", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    ran = total - skipped
    print(f"[junit] {report}: {total} collected, {ran} ran, {skipped} skipped, {failed} failed/errored")
    if ran <= 0:
        print("[junit] ERROR: no test ran", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
