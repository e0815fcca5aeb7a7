"""The documentation that is generated from the code stays in step with it: the transition table of
docs/architecture.md is models.MACHINE. ``python tests/test_docs.py`` rewrites it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from jobhandle.models import ALL_STATUSES, MACHINE

ARCHITECTURE = Path(__file__).parent.parent / "docs" / "architecture.md"
BLOCK = re.compile(r"(<!-- transitions:[^\n]*-->\n)(.*?)(<!-- /transitions -->)", re.S)


def transition_table() -> str:
    lines = ["| transition | from | to | when |", "| --- | --- | --- | --- |"]
    for t in MACHINE:
        targets = [s.value for s in ALL_STATUSES if s in t.targets]
        lines.append(f"| `{t.name}` | {', '.join(s.value for s in t.ordered_sources())} | {', '.join(targets)} "
                     f"| {t.means} |")
    return "\n".join(lines) + "\n"


def test_the_architecture_doc_shows_the_state_machine_as_the_code_defines_it() -> None:
    found = BLOCK.search(ARCHITECTURE.read_text())
    assert found, "docs/architecture.md has no generated transitions block"
    assert found.group(2) == transition_table(), "run: python tests/test_docs.py"


if __name__ == "__main__":
    text = ARCHITECTURE.read_text()
    ARCHITECTURE.write_text(BLOCK.sub(lambda m: m.group(1) + transition_table() + m.group(3), text))
    sys.exit(0)
