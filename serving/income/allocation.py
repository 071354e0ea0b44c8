"""A person's decision on a match from the suspense queue.

Approving moves the receipt to its tenancy in the ledger the way any posting arrives: a delivery of its own,
written to `ARREARS_HOME/deliveries/allocations/<receipt>/` and ingested (`features.feeds.ingest`), holding a
payment on the tenancy for the receipt's amount, posted on the day it is cleared (the service's today, as a housing
system posts a receipt cleared from suspense: a posting dated earlier would contradict the balance the housing
system already reported), allocation `rent`, its reference naming the receipt; and the receipt again, now cleared
to the tenancy. The audit trail records who approved
(`suspense_allocated`), the income team's decisions keep it (`serving.income.store`). Approving again is safe: a
receipt already cleared to that tenancy is answered as it is (its missing audit entry or decision written, after a
crash between the steps). Rejecting a match records it (`suspense_rejected`) and takes that tenancy off the
receipt's candidates. Nothing here writes payer text anywhere but the ledger's own suspense row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from casework.store import open_audit
from features.feeds.ingest import clock_for, ingest_delivery
from features.ledger import open_ledger
from features.store.offline import FeatureStageError
from features.store.refresh import refresh_delivery
from serving.income.store import open_decisions
from serving.settings import ServingSettings

log = logging.getLogger(__name__)


class UnknownReceipt(LookupError):
    """No receipt in suspense has that id."""


class AlreadyAllocated(ValueError):
    """The receipt was cleared to another tenancy; the message names which."""


@dataclass(frozen=True)
class Decided:
    receipt_id: str
    tenancy_id: str
    decision: str  #: approved or rejected
    status: str  #: allocated, already_allocated, rejected, already_rejected
    transaction_id: str | None = None
    delivery_seq: int | None = None


def transaction_id(receipt_id: str) -> str:
    return f"ALLOC-{receipt_id}"


def _receipt(settings: ServingSettings, receipt_id: str) -> tuple[dict, set[str]]:
    with open_ledger(settings.ledger, read_only=True) as ledger:
        found = ledger.query("SELECT * FROM suspense_register WHERE receipt_id = ?", [receipt_id])
        known = ledger.query("SELECT DISTINCT tenancy_id FROM tenancy_register")["tenancy_id"]
    if found.empty:
        raise UnknownReceipt(f"No receipt in suspense is {receipt_id!r}")
    return found.iloc[0].to_dict(), set(known)


def _delivery(settings: ServingSettings, receipt: dict, tenancy_id: str) -> Path:
    """The allocation's delivery folder: the payment and the receipt cleared to the tenancy."""
    folder = settings.home / "deliveries" / "allocations" / str(receipt["receipt_id"])
    folder.mkdir(parents=True, exist_ok=True)
    received = pd.Timestamp(receipt["received_date"]).date()
    cleared = max(received, clock_for(settings).today)
    amount = f"{int(receipt['amount_pence']) / 100:.2f}"
    pd.DataFrame([{"transaction_id": transaction_id(receipt["receipt_id"]), "tenancy_id": tenancy_id,
                   "posted_date": cleared, "type": "payment", "amount": f"-{amount}", "method": "suspense",
                   "reference": f"Allocated from suspense receipt {receipt['receipt_id']}", "allocation": "rent"}]
                 ).to_csv(folder / "transactions.csv", index=False)
    pd.DataFrame([{"receipt_id": receipt["receipt_id"], "received_date": received, "amount": amount,
                   "reference": receipt.get("reference"), "payer": receipt.get("payer"),
                   "source": receipt["source"], "cleared_tenancy_id": tenancy_id,
                   "cleared_date": cleared}]).to_csv(folder / "suspense.csv", index=False)
    return folder


def approve(settings: ServingSettings, receipt_id: str, tenancy_id: str, actor: str, role: str,
            probability: float | None = None) -> Decided:
    """Allocate receipt `receipt_id` to `tenancy_id` (see the module's doc); idempotent."""
    receipt, known = _receipt(settings, receipt_id)
    if tenancy_id not in known:
        raise UnknownReceipt(f"No tenancy is {tenancy_id!r}")
    cleared = receipt.get("cleared_tenancy_id")
    status, seq = "already_allocated", None
    if isinstance(cleared, str) and cleared != tenancy_id:
        raise AlreadyAllocated(f"Receipt {receipt_id} was already cleared to {cleared}")
    if not isinstance(cleared, str):
        folder = _delivery(settings, receipt, tenancy_id)
        with open_ledger(settings.ledger) as ledger:
            summary = ingest_delivery(ledger, folder, settings.quarantine_dir, clock_for(settings),
                                      settings.ingest_memory)
        accepted = {name: feed.accepted for name, feed in summary.feeds.items()}
        if accepted.get("suspense") != 1 or accepted.get("transactions") != 1:
            raise ValueError(f"The allocation of {receipt_id} was not accepted by the ledger ({accepted}); see the "
                             "quarantine")
        status, seq = "allocated", summary.delivery_seq
        _refresh_online(settings, seq)
    detail = {"receipt_id": receipt_id, "amount": int(receipt["amount_pence"]) / 100,
              "received_date": str(pd.Timestamp(receipt["received_date"]).date()),
              "transaction_id": transaction_id(receipt_id), "source": str(receipt["source"]),
              "probability": None if probability is None else round(float(probability), 4)}
    with open_audit(settings) as log:
        if log.latest("suspense_allocated", receipt_id=receipt_id) is None:
            log.append(actor, role, "suspense_allocated", tenancy_id, detail | {"delivery_seq": seq})
    with open_decisions(settings) as decisions:
        decisions.record(receipt_id, tenancy_id, "approved", actor, role, probability, seq)
    return Decided(receipt_id, tenancy_id, "approved", status, transaction_id(receipt_id), seq)


def _refresh_online(settings: ServingSettings, seq: int) -> None:
    """The tenancy's online features with the allocation in them, as `arrears ingest` does after a delivery (the
    allocation stands without it: the next feature refresh catches up)."""
    try:
        refresh_delivery(settings, seq)
    except FeatureStageError:
        log.warning("online features not refreshed after allocation delivery %s", seq, exc_info=True)


def reject(settings: ServingSettings, receipt_id: str, tenancy_id: str, actor: str, role: str,
           probability: float | None = None) -> Decided:
    """Record that `tenancy_id` is not the receipt's tenancy: it leaves the receipt's candidates."""
    _receipt(settings, receipt_id)
    with open_decisions(settings) as decisions:
        new = decisions.record(receipt_id, tenancy_id, "rejected", actor, role, probability)
    if new:
        with open_audit(settings) as log:
            log.append(actor, role, "suspense_rejected", tenancy_id, {
                "receipt_id": receipt_id, "probability": None if probability is None else round(float(probability), 4)})
    return Decided(receipt_id, tenancy_id, "rejected", "rejected" if new else "already_rejected")
