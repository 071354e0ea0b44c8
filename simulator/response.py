"""How a simulated portfolio's tenants answer a contact: the causal overlay for replaying the service's own worklist.

`simulator.portfolio` writes a whole window at once, its officers part of the history. To replay the service as it
will run (`arrears.replay` with officers: each week they work the recorded run's list and the next deliveries carry
what that caused), each tenancy is given a hidden kind with the same chances as `simulator.causal` (by its
archetype in the portfolio's truth):

* a **persuadable** tenant pays a catch-up towards the arrears a few days after a contact, with probability
  ``catchup_lift``, of their own ``catchup_share`` of what they owe that day;
* a **sleeping dog** skips their next payment within two weeks (pressure makes things worse);
* **sure things** and **lost causes** pay as they would have.

`respond` returns the transactions with those changes (new payments carry a reference "Payment after contact" and an
id of their own; a skipped payment is removed), so every later export, balance and feature follows from them.
Draws are keyed on (seed, tenancy, day), so a replay repeats exactly and a contact on another day draws afresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from simulator.causal import ARCHETYPES, KIND_GIVEN_ARCHETYPE, KINDS

#: Days after the contact the catch-up is posted.
CATCHUP_AFTER_DAYS = 3
#: A sleeping dog skips their first payment within this many days of the contact.
SKIP_WITHIN_DAYS = 14
REFERENCE = "Payment after contact"


def _uniform(seed: int, *parts: object) -> float:
    digest = hashlib.sha256("\x1f".join(map(str, (seed, *parts))).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def contact_kinds(truth_tenancies: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Each tenancy's hidden kind and how strongly a contact prompts a catch-up (tenancy_id, kind, catchup_lift,
    catchup_share), from its archetype and catch-up share in the portfolio's truth."""
    archetype = truth_tenancies["archetype"].map({a: i for i, a in enumerate(ARCHETYPES)}).to_numpy()
    ids = truth_tenancies["tenancy_id"].astype(str).to_numpy()
    draw = np.array([_uniform(seed, "kind", t) for t in ids])
    kind = (draw[:, None] > np.cumsum(KIND_GIVEN_ARCHETYPE[archetype], axis=1)).sum(axis=1).clip(0, len(KINDS) - 1)
    lift = np.array([0.25 + 0.4 * _uniform(seed, "lift", t) for t in ids])
    return pd.DataFrame({"tenancy_id": ids, "kind": np.array(KINDS, dtype=object)[kind],
                         "catchup_lift": np.where(kind == 0, lift, 0.0),
                         "catchup_share": truth_tenancies["catchup_share"].to_numpy(dtype=float)})


def respond(transactions: pd.DataFrame, kinds: pd.DataFrame, contacted: Sequence[str], day: pd.Timestamp,
            seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The transactions after these tenancies were contacted on `day`, and what the contacts caused (tenancy_id,
    kind, change: 'catch_up' or 'skipped', amount, posted_date)."""
    day = pd.Timestamp(day).normalize()
    who = kinds.set_index("tenancy_id").reindex([str(t) for t in contacted]).dropna(subset=["kind"])
    posted = pd.to_datetime(transactions["posted_date"])
    ids = transactions["tenancy_id"].astype(str)
    owed = transactions[posted <= day].groupby(ids[posted <= day])["amount"].sum()
    caused, added, dropped = [], [], []
    for tenancy, row in who.iterrows():
        if row["kind"] == "persuadable" and _uniform(seed, "catchup", tenancy, day.date()) < row["catchup_lift"]:
            amount = round(float(row["catchup_share"]) * float(owed.get(tenancy, 0.0)), 2)
            if amount >= 1:
                when = day + pd.Timedelta(days=CATCHUP_AFTER_DAYS)
                key = hashlib.sha256(f"{seed}\x1f{tenancy}\x1f{day.date()}".encode()).hexdigest()[:12].upper()
                added.append({"transaction_id": f"C{key}", "tenancy_id": tenancy, "posted_date": when,
                              "type": "payment", "amount": -amount, "method": "card", "reference": REFERENCE,
                              "allocation": "rent"})
                caused.append((tenancy, row["kind"], "catch_up", amount, when))
        elif row["kind"] == "sleeping_dog":
            mine = transactions[(ids == tenancy) & (transactions["type"] == "payment") & (posted > day)
                                & (posted <= day + pd.Timedelta(days=SKIP_WITHIN_DAYS))]
            if len(mine):
                first = mine.sort_values("posted_date").iloc[0]
                dropped.append(first["transaction_id"])
                caused.append((tenancy, row["kind"], "skipped", float(-first["amount"]), first["posted_date"]))
    kept = transactions[~transactions["transaction_id"].isin(dropped)]
    if added:  # categorical columns widen to text: the new reference is not among the old categories
        kept = pd.concat([kept.astype({c: object for c in kept.select_dtypes("category").columns}),
                          pd.DataFrame(added)], ignore_index=True)
    effects = pd.DataFrame(caused, columns=["tenancy_id", "kind", "change", "amount", "posted_date"])
    return kept.reset_index(drop=True), effects
