"""docs/features.md lists exactly the catalogue's features, each under its Feast view with its unit."""

from __future__ import annotations

import re
from pathlib import Path

from features.catalogue import SNAPSHOT_FEATURES

DOC = (Path(__file__).resolve().parents[2] / "docs" / "features.md").read_text()
VIEWS = {"balance": "tenancy_balance", "payments": "tenancy_payments", "circumstances": "tenancy_circumstances",
         "tenancy": "tenancy_profile", "recency": "tenancy_recency"}


def test_every_feature_is_documented_under_its_view_and_nothing_else_is() -> None:
    documented = {}
    view = None
    for line in DOC.splitlines():
        if line.startswith("### "):
            view = line.split()[1]
        match = re.match(r"\| `([a-z0-9_]+)` \| ([^|]+) \| ([^|]+) \|", line)
        if match:
            documented[match.group(1)] = (view, match.group(2).strip(), match.group(3).strip())
    expected = {f.name: (VIEWS[f.group], f.unit, f.description) for f in SNAPSHOT_FEATURES}
    assert documented == expected
