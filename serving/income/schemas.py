"""What the income endpoints answer, typed (the service's OpenAPI spec stays real): the suspense queue with each
receipt's ranked candidates and reasons, and a decision on a match."""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import BaseModel, Field


class Candidate(BaseModel):
    rank: int = Field(description="1: the most likely tenancy")
    tenancy_id: str
    probability: float = Field(description="Match probability (calibrated on the ledger's cleared receipts)")
    reasons: list[str] = Field(description="Why it is a candidate, in plain words")


class SuspenseReceipt(BaseModel):
    receipt_id: str
    received_date: str = Field(description="YYYY-MM-DD")
    amount: float = Field(description="Pounds received")
    reference: str | None = Field(description="The credit's reference as the bank gave it")
    payer: str | None = Field(description="The payer text as the bank gave it (shown to the income team only)")
    source: str = Field(description="bank, payment_provider or dwp")
    decision: Literal["proposed", "queued"] = Field(
        description="proposed: the top candidate is sure enough for one-click approval; queued: a person chooses")
    tenancy_id: str | None = Field(description="The most likely tenancy (null: no candidate)")
    probability: float = Field(description="The most likely tenancy's match probability (0 without candidates)")
    candidates: list[Candidate]


class SuspenseQueueAnswer(BaseModel):
    ledger_seq: int = Field(description="The ledger delivery the queue was computed from")
    open_receipts: int = Field(description="Receipts in suspense not yet cleared to a tenancy")
    proposed: int = Field(description="How many of them are proposed for one-click approval")
    propose_at: float = Field(description="The match probability from which a match is proposed")
    matcher: str | None = Field(description="The classifier that scored the matches (null: too little history)")
    trained_on: int = Field(description="Receipts cleared at source it learnt from")
    note: str | None = Field(description="Why nothing could be matched, when nothing could")
    receipts: list[SuspenseReceipt]


class SuspenseDecision(BaseModel):
    receipt_id: str
    tenancy_id: str
    decision: Literal["approved", "rejected"]
    status: Literal["allocated", "already_allocated", "rejected", "already_rejected"]
    transaction_id: str | None = Field(description="The allocation's posting in the ledger (approved)")
    delivery_seq: int | None = Field(description="The ledger delivery the allocation arrived in (null when it was "
                                     "already allocated)")


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def queue_answer(found, propose_at: float, top: int) -> SuspenseQueueAnswer:
    """A `serving.income.store.SuspenseQueue` as answered: proposed receipts first, then the rest, `top` of them."""
    shown = {receipt: [Candidate(rank=int(c["rank"]), tenancy_id=str(c["tenancy_id"]),
                                 probability=round(float(c["probability"]), 4), reasons=list(c["reasons"]))
                       for c in group.to_dict("records")]
             for receipt, group in found.candidates.groupby("receipt_id")}
    rows = [SuspenseReceipt(
        receipt_id=str(r["receipt_id"]), received_date=str(pd.Timestamp(r["received_date"]).date()),
        amount=int(r["amount_pence"]) / 100, reference=_text(r["reference"]), payer=_text(r["payer"]),
        source=str(r["source"]), decision=r["decision"], tenancy_id=_text(r["tenancy_id"]),
        probability=round(float(r["probability"]), 4), candidates=shown.get(r["receipt_id"], []))
        for r in found.receipts.head(top).to_dict("records")]
    return SuspenseQueueAnswer(
        ledger_seq=found.ledger_seq, open_receipts=len(found.receipts),
        proposed=int((found.receipts["decision"] == "proposed").sum()), propose_at=propose_at,
        matcher=found.matcher, trained_on=found.trained_on, note=found.why, receipts=rows)
