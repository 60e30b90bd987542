"""Sum the instructions a callgrind profile spent in cnnfast's compiled kernels.

    python .ci/callgrind_count.py callgrind.out [--top N]

Counts the self cost (Ir) of every function of the extension object
(``_kernels*.so``) except Cython's generated glue (``__pyx*`` / ``__Pyx*``),
whose count follows the Cython version CI happens to install rather than
cnnfast's code; the interpreter, numpy and the C library are not counted.
"""

from __future__ import annotations

import re
import sys
from collections import Counter


def kernel_instructions(path: str) -> Counter:
    """Self Ir per function of the extension object in a callgrind output file."""
    names: dict[str, dict[str, str]] = {"ob": {}, "fn": {}}
    costs: Counter = Counter()
    ob = fn = ""
    skip_next_cost = False
    ref = re.compile(r"^(c?ob|c?fn|c?fi|c?fe|fl|jump|jcnd)=(?:\((\d+)\))?\s*(.*)$")
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = ref.match(line)
            if m:
                key, ident, name = m.groups()
                table = "ob" if key in ("ob", "cob") else "fn" if key in ("fn", "cfn") else None
                if table is not None:
                    if ident is not None and name:
                        names[table][ident] = name
                    resolved = names[table].get(ident, name) if ident is not None else name
                    if key == "ob":
                        ob = resolved
                    elif key == "fn":
                        fn = resolved
                continue
            if line.startswith("calls="):
                skip_next_cost = True  # the next cost line is the call's inclusive cost
                continue
            if line[:1].isdigit() or line[:1] in "+-*":
                if skip_next_cost:
                    skip_next_cost = False
                    continue
                parts = line.split()
                if len(parts) >= 2 and "_kernels" in ob and not fn.lower().startswith("__pyx"):
                    costs[fn] += int(parts[1])
    return costs


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    costs = kernel_instructions(argv[0])
    top = int(argv[2]) if len(argv) == 3 and argv[1] == "--top" else 0
    for fn, n in costs.most_common(top):
        print(f"{n:>14,}  {fn}", file=sys.stderr)
    print(sum(costs.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
