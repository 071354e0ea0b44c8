"""Outreach drafts, the approval queue and the outbox. Nothing here contacts a tenant: a draft is written for a
`ready` case from a versioned template, waits for a supervisor to approve it (as written or edited: the edit is kept
beside the original) or reject it, and an approved draft is released to the outbox (a table the landlord's own
sending system reads) only if, at that moment, no payment has arrived since the draft, the case is still ready and
its contact limit allows; otherwise it is suppressed with the reason. Every step is in the audit trail, the texts
by digest (a letter names its tenant; the trail never does).

Templates live in `casework/templates/outreach/`, one file per stage, language and channel
(`first_reminder.en.letter.j2`; a `.vulnerable` variant where a vulnerable tenant needs other wording), each opening
with `{#- version: ... -#}`; the version a draft records is that and a digest of the file, so an edit to a template
is a new version even if nobody bumps the number. They are rendered by Jinja2's sandbox with strict undefined
variables: a template cannot reach the application, and a missing fact is an error, not a blank in a letter.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

import pandas as pd
import yaml

from casework import restrictions
from casework.audit import AuditLog
from casework.cases import release_contacts
from features.db import Database, and_in
from features.feeds.contract import weekly_rent

TEMPLATES = Path(__file__).resolve().parent / "templates" / "outreach"
CONTENT = TEMPLATES / "content.yaml"
STAGES = ("first_reminder", "missed_promise", "broken_arrangement", "pre_action", "warning")
DRAFT_CHANNELS = ("letter", "sms", "email")
#: Protocol steps whose next contact is a pre-action letter with a statement of arrears.
PRE_ACTION_STEPS = ("statement", "notice", "notice_running", "claim", "court")
#: The language a draft falls back to when the tenant's has no templates (marked for translation, never silently).
FALLBACK_LANGUAGE = "en"
TABLES = {
    "drafts": {"draft_id": "TEXT", "tenancy_id": "TEXT", "version": "BIGINT", "parent_id": "TEXT", "stage": "TEXT",
               "language": "TEXT", "channel": "TEXT", "template": "TEXT", "template_version": "TEXT", "text": "TEXT",
               "facts": "TEXT", "status": "TEXT", "created_by": "TEXT", "created_at": "TEXT", "decided_by": "TEXT",
               "decided_at": "TEXT", "reason": "TEXT", "needs_translation": "TEXT"},
    "outbox": {"draft_id": "TEXT", "tenancy_id": "TEXT", "channel": "TEXT", "language": "TEXT", "text": "TEXT",
               "released_at": "TEXT", "released_by": "TEXT", "seq": "BIGINT"},
}
PRIMARY_KEYS = {"drafts": ("draft_id",), "outbox": ("draft_id",)}
INDEXES = ("CREATE INDEX IF NOT EXISTS drafts_tenancy ON drafts (tenancy_id, status)",
           "CREATE UNIQUE INDEX IF NOT EXISTS outbox_seq ON outbox (seq)")
#: The most messages one read of the outbox returns.
OUTBOX_PAGE = 1000
REJECT_REASONS = ("wrong_stage", "wrong_facts", "tone", "not_now", "other")


class DraftRefused(ValueError):
    """The draft step is not allowed now; the message says why and what to do."""


class MissingTemplate(LookupError):
    """No template for the stage, language and channel asked for; the message says which file to add."""


@dataclass(frozen=True)
class DraftFacts:
    """What a draft is built on, recorded with it: the case as judged, and the account on `as_of`."""

    tenancy_id: str
    as_of: str
    readiness_state: str
    protocol_step: str | None
    policy_version: str
    run_id: str
    balance: float
    arrears_weeks: float
    vulnerable: bool = False
    tenant_name: str | None = None
    reasons: tuple[str, ...] = ()  #: the policy rules that fired
    promise: dict | None = None  #: the last missed promise: made, due, amount
    statement: tuple[dict, ...] = ()  #: date, item, amount, balance (latest postings, oldest first)
    extra: dict = field(default_factory=dict)
    #: The randomised holdout the case is in (experiment, action: the stage held out, note), if any.
    held_out: dict | None = None


@dataclass(frozen=True)
class ReleaseCheck:
    """The case at the moment of release."""

    received_since_draft: float  #: pounds received since the draft's as_of
    readiness_state: str
    state_reasons: tuple[str, ...]
    contacts_recent: int
    contact_limit: int
    limit_days: int = 7
    held_out: dict | None = None  #: the randomised holdout the case is in now (as DraftFacts.held_out)


def check_of(judged: pd.Series, facts: pd.Series, received_since_draft: float, contact_limit: dict) -> ReleaseCheck:
    """The release check of a case from its readiness row and facts row judged now (with every contact: the feed's,
    the officers', the releases before), what was received since the draft, and the policy's contact limit."""
    return ReleaseCheck(received_since_draft=received_since_draft, readiness_state=str(judged["readiness_state"]),
                        state_reasons=tuple(rule for rule, _ in judged["state_reasons"]),
                        contacts_recent=int(facts["attempts_recent"]), contact_limit=int(contact_limit["attempts"]),
                        limit_days=int(contact_limit["days"]))


def ensure_schema(db: Database) -> None:
    db.ensure_tables(TABLES, PRIMARY_KEYS, INDEXES[:1])
    _number_unsequenced(db)
    for statement in INDEXES[1:]:
        db.execute(statement)


def _number_unsequenced(db: Database) -> None:
    """Give messages released before the outbox had sequence numbers theirs, in the order they were released (after
    any numbered ones): a store made by an earlier version keeps every message readable by sequence."""
    with db.transaction():
        waiting = db.query("SELECT draft_id FROM outbox WHERE seq IS NULL ORDER BY released_at, draft_id")
        if waiting.empty:
            return
        first = int(db.query("SELECT COALESCE(MAX(seq), 0) AS seq FROM outbox")["seq"].iloc[0]) + 1
        for seq, draft_id in enumerate(waiting["draft_id"], start=first):
            db.execute("UPDATE outbox SET seq = ? WHERE draft_id = ?", [seq, draft_id])


def _next_seq(db: Database) -> int:
    """The next message's sequence number, read inside the releasing transaction with writers serialised (SQLite:
    the transaction's write lock; Postgres: a table lock), so messages commit in sequence order and a consumer that
    keeps the last sequence it read never skips one committed late."""
    if db.backend == "postgres":
        db.execute("LOCK TABLE outbox IN SHARE ROW EXCLUSIVE MODE")
    return int(db.query("SELECT COALESCE(MAX(seq), 0) AS seq FROM outbox")["seq"].iloc[0]) + 1


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@cache
def _environment():
    # Jinja2 (0.2 s to import) only when a draft is rendered: every arrears command imports this module.
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)


def stage_for(facts: DraftFacts) -> str:
    """Which letter a ready case needs: a missed promise's, a broken arrangement's, a warning of proceedings once a
    notice's period has run (protocol 2.9), a pre-action letter with a statement at the protocol's later steps, else
    a first reminder."""
    if facts.promise is not None and "arrangement_broken" in facts.reasons:
        return "missed_promise"
    if {"arrangement_broken", "arrangement_not_kept"} & set(facts.reasons):
        return "broken_arrangement"
    if facts.protocol_step == "warning":
        return "warning"
    if facts.protocol_step in PRE_ACTION_STEPS:
        return "pre_action"
    return "first_reminder"


@cache
def content_rules() -> dict:
    """What each stage's letter must and must not say (`content.yaml` beside the templates)."""
    return yaml.safe_load(CONTENT.read_text())


def _pattern(name: str, language: str) -> re.Pattern:
    rule = content_rules()["patterns"][name]
    return re.compile(rule.get("any") or rule.get(language) or rule[FALLBACK_LANGUAGE], re.IGNORECASE)


def possession_allowed(protocol_step: str | None) -> bool:
    """Whether a letter may mention possession: only once a notice may be served (or has been)."""
    return protocol_step in content_rules()["possession_from_steps"]


def check_content(stage: str, language: str, protocol_step: str | None, text: str) -> list[str]:
    """What is wrong with a draft's text for its stage: each required item missing, each forbidden one found
    (possession wording before a notice may be served, a placeholder, a zero or negative amount owed). Empty: it
    may go for approval."""
    rules, says = content_rules()["stages"][stage], content_rules()["patterns"]
    problems = [f"missing: {says[name]['says']}" for name in rules["requires"]
                if not _pattern(name, language).search(text)]
    forbidden = list(content_rules()["forbidden"])
    if "possession" not in rules["requires"] and not possession_allowed(protocol_step):
        forbidden.append("possession")
    for name in forbidden:
        found = _pattern(name, language).search(text)
        if found:
            problems.append(f"not allowed: {says[name]['says']} ({found.group(0)!r})"
                            + (" before a notice may be served" if name == "possession" else ""))
    return problems


def refusal(facts: DraftFacts, stage: str, channel: str) -> str | None:
    """Why no draft may be written for the case (None: one may): not ready, nothing owed or in credit, no arrears
    step, arrears under the stage's threshold, or a channel the stage cannot use."""
    if facts.readiness_state != "ready":
        why = f" ({', '.join(facts.reasons)})" if facts.reasons else ""
        return (f"The case is {facts.readiness_state.replace('_', ' ')}{why}, not ready: drafts are written only for "
                "ready cases")
    held = held_out_reason(facts.held_out, stage)
    if held:
        return held
    if facts.balance <= 0:
        owed = "owes nothing" if facts.balance == 0 else f"is £{-facts.balance:,.2f} in credit"
        return f"The account {owed} on {facts.as_of}: there are no arrears to write about"
    if facts.protocol_step in (None, "none"):
        return ("The case is at protocol step none (under a week's arrears): no arrears letter until the arrears "
                "reach the protocol's threshold")
    rules = content_rules()["stages"][stage]
    if facts.arrears_weeks < rules["min_arrears_weeks"]:
        return (f"The arrears are {facts.arrears_weeks:.1f} weeks' rent, under the {rules['min_arrears_weeks']:g} a "
                f"{stage.replace('_', ' ')} letter needs")
    if channel not in rules["channels"]:
        return f"A {stage.replace('_', ' ')} goes by {' or '.join(rules['channels'])}, not {channel}"
    return None


def held_out_reason(held_out: dict | None, stage: str) -> str | None:
    """Why a held-out case gets no draft of `stage` (None: the stage is not the one its experiment holds out; a
    statutory step never is)."""
    if not held_out or stage != held_out.get("action"):
        return None
    return (f"{held_out['note'][0].upper()}{held_out['note'][1:]}: the case is in the experiment's holdout, which "
            f"gets no {stage.replace('_', ' ')}; its statutory steps (a pre-action letter, a warning) still go ahead")


def template_for(stage: str, language: str, channel: str, vulnerable: bool) -> Path:
    """The template file of a stage, language and channel (its vulnerable wording where there is one)."""
    names = [f"{stage}.{language}.{channel}.vulnerable.j2"] if vulnerable else []
    for name in [*names, f"{stage}.{language}.{channel}.j2"]:
        if (TEMPLATES / name).exists():
            return TEMPLATES / name
    have = sorted(p.name.removesuffix(".j2") for p in TEMPLATES.glob(f"{stage}.*.j2"))
    raise MissingTemplate(f"No {channel} template in language {language!r} for stage {stage}: there are "
                       f"{', '.join(have) or 'none'} (add casework/templates/outreach/{stage}.{language}.{channel}.j2)")


def template_version(path: Path) -> str:
    text = path.read_text()
    found = re.match(r"\{#-?\s*version:\s*(\S+)\s*-?#\}", text)
    return f"{found.group(1) if found else 'unversioned'}+{_digest(text)[:8]}"


#: Month names where strftime's (English) will not do.
MONTHS = {"cy": ("Ionawr", "Chwefror", "Mawrth", "Ebrill", "Mai", "Mehefin", "Gorffennaf", "Awst", "Medi", "Hydref",
                 "Tachwedd", "Rhagfyr")}


def day_text(day, language: str) -> str:
    """A date as a letter in `language` writes it: 31 October 2026, 31 Hydref 2026."""
    day = pd.Timestamp(day)
    month = MONTHS[language][day.month - 1] if language in MONTHS else day.strftime("%B")
    return f"{day.day} {month} {day.year}"


def render(path: Path, facts: DraftFacts) -> str:
    """The template filled with the facts (money to the penny, days in words in the template's language)."""
    language = path.name.split(".")[1]
    values = asdict(facts)
    values |= {"balance": f"{facts.balance:,.2f}", "arrears_weeks": f"{facts.arrears_weeks:.1f}",
               "as_of_text": day_text(facts.as_of, language),
               "possession_allowed": possession_allowed(facts.protocol_step)}
    if facts.promise:
        values |= {"promised": f"{facts.promise['amount']:,.2f}",
                   "promise_made_text": day_text(facts.promise["made"], language),
                   "promise_due_text": day_text(facts.promise["due"], language)}
    return _environment().from_string(path.read_text()).render(**values).strip() + "\n"


@cache
def languages() -> tuple[str, ...]:
    """The languages templates are written in."""
    return tuple(sorted({path.name.split(".")[1] for path in TEMPLATES.glob("*.j2")}))


def has_language(language: str) -> bool:
    """Whether any template is written in `language`."""
    return language in languages()


def generate(db: Database, log: AuditLog, facts: DraftFacts, channel: str, language: str, actor: str,
             role: str) -> dict:
    """Write a draft for a ready case with arrears and put it in the approval queue. Refused (`refusal`) for a case
    not ready, owing nothing, at no arrears step, under the stage's threshold, or with a draft already waiting. A
    language without templates gets an English draft marked `needs_translation` (the language asked for). The text
    is checked against its stage's content rules (`check_content`) before anyone sees it."""
    if restrictions.restricted(db, [facts.tenancy_id]):
        raise DraftRefused(f"Processing of {facts.tenancy_id} is restricted (a data-protection request): no drafts "
                           "until an admin lifts it (`arrears privacy restrict TENANCY --lift`)")
    stage = stage_for(facts)
    refused = refusal(facts, stage, channel) if channel in DRAFT_CHANNELS else (
        f"Unknown channel {channel!r}: one of {', '.join(DRAFT_CHANNELS)}")
    if refused:
        raise DraftRefused(refused)
    wanted, language = language, language if has_language(language) else FALLBACK_LANGUAGE
    path = template_for(stage, language, channel, facts.vulnerable)
    text = render(path, facts)
    problems = check_content(stage, language, facts.protocol_step, text)
    if problems:
        raise DraftRefused(f"Template {path.name} does not meet its stage's content rules for this case: "
                           f"{'; '.join(problems)} (fix the template)")
    row = {"draft_id": uuid.uuid4().hex[:16], "tenancy_id": facts.tenancy_id, "version": 1, "parent_id": None,
           "stage": stage, "language": language, "channel": channel, "template": path.name,
           "template_version": template_version(path), "text": text,
           "facts": json.dumps(asdict(facts), default=str), "status": "pending", "created_by": actor,
           "created_at": _now(), "decided_by": None, "decided_at": None, "reason": None,
           "needs_translation": None if wanted == language else wanted}
    _write_new(db, row)
    log.append(actor, role, "draft_generated", facts.tenancy_id, {
        "draft_id": row["draft_id"], "stage": stage, "language": language, "channel": channel,
        "template": path.name, "template_version": row["template_version"], "as_of": facts.as_of,
        "balance": facts.balance, "policy_version": facts.policy_version, "run_id": facts.run_id,
        "text_sha256": _digest(text)} | ({"needs_translation": wanted} if wanted != language else {}))
    return row


def _write_new(db: Database, row: dict) -> None:
    """Keep a new draft, unless the case has one waiting."""
    with db.transaction():
        waiting = db.query("SELECT draft_id FROM drafts WHERE tenancy_id = ? AND status IN ('pending', 'approved')",
                           [row["tenancy_id"]])
        if len(waiting):
            raise DraftRefused(f"The case already has draft {waiting['draft_id'].iloc[0]} waiting: approve, reject or "
                               "release it first")
        db.append("drafts", pd.DataFrame([row]), list(TABLES["drafts"]))


def draft(db: Database, draft_id: str) -> dict:
    found = db.query("SELECT * FROM drafts WHERE draft_id = ?", [draft_id])
    if found.empty:
        raise LookupError(f"No draft {draft_id}")
    return found.iloc[0].to_dict()


def drafts(db: Database, tenancy_ids: list[str] | None = None, statuses: tuple[str, ...] = ()) -> pd.DataFrame:
    """Drafts (of some tenancies, in some statuses), oldest first."""
    sql, params = and_in("SELECT * FROM drafts WHERE 1 = 1", [], "tenancy_id", tenancy_ids)
    sql, params = and_in(sql, params, "status", statuses or None)
    return db.query(sql + " ORDER BY created_at, version", params)


def _decide(db: Database, draft_id: str, wanted: str, actor: str) -> dict:
    """The draft, if it is in status `wanted` and `actor` did not write it (a second person decides)."""
    found = draft(db, draft_id)
    if found["status"] != wanted:
        raise DraftRefused(f"Draft {draft_id} is {found['status']}, not {wanted}")
    if found["created_by"] == actor:
        raise DraftRefused(f"{actor} wrote draft {draft_id}: another person approves, rejects or releases it")
    return found


def approve(db: Database, log: AuditLog, draft_id: str, actor: str, role: str, text: str | None = None) -> dict:
    """Approve a pending draft as written, or as edited: an edit becomes version 2 beside the original (which is
    kept, marked edited), and the audit trail records both versions' digests."""
    with db.transaction():
        original = _decide(db, draft_id, "pending", actor)
        approved = dict(original)
        if text is not None and text.strip() and text.strip() != original["text"].strip():
            _check_edit(original, text)
            db.execute("UPDATE drafts SET status = 'edited', decided_by = ?, decided_at = ? WHERE draft_id = ?",
                       [actor, _now(), draft_id])
            approved |= {"draft_id": uuid.uuid4().hex[:16], "version": int(original["version"]) + 1,
                         "parent_id": draft_id, "text": text.strip() + "\n", "created_by": actor, "created_at": _now()}
        approved |= {"status": "approved", "decided_by": actor, "decided_at": _now()}
        if approved["draft_id"] == draft_id:
            db.execute("UPDATE drafts SET status = 'approved', decided_by = ?, decided_at = ? WHERE draft_id = ?",
                       [actor, approved["decided_at"], draft_id])
        else:
            db.append("drafts", pd.DataFrame([approved]), list(TABLES["drafts"]))
    if approved["draft_id"] != draft_id:
        log.append(actor, role, "draft_edited", original["tenancy_id"], {
            "draft_id": draft_id, "edited_draft_id": approved["draft_id"],
            "original_sha256": _digest(original["text"]), "edited_sha256": _digest(approved["text"])})
    log.append(actor, role, "draft_approved", original["tenancy_id"], {
        "draft_id": approved["draft_id"], "version": int(approved["version"]),
        "text_sha256": _digest(approved["text"])})
    return approved


def _check_edit(original: dict, text: str) -> None:
    """An edit keeps what its stage requires and adds nothing it forbids, judged at the protocol step the draft was
    written at; else approval is refused, naming each problem."""
    step = json.loads(original["facts"]).get("protocol_step")
    problems = check_content(str(original["stage"]), str(original["language"]), step, text)
    if problems:
        raise DraftRefused(f"The edited {str(original['stage']).replace('_', ' ')} cannot be approved: "
                           f"{'; '.join(problems)}. Put it right and approve again, or approve the draft as written")


def reject(db: Database, log: AuditLog, draft_id: str, actor: str, role: str, reason: str) -> dict:
    if reason not in REJECT_REASONS:
        raise DraftRefused(f"A rejection's reason is one of {', '.join(REJECT_REASONS)}")
    with db.transaction():
        found = _decide(db, draft_id, "pending", actor)
        db.execute("UPDATE drafts SET status = 'rejected', decided_by = ?, decided_at = ?, reason = ? "
                   "WHERE draft_id = ?", [actor, _now(), reason, draft_id])
    log.append(actor, role, "draft_rejected", found["tenancy_id"], {"draft_id": draft_id, "reason": reason})
    return found | {"status": "rejected", "reason": reason}


def suppression(check: ReleaseCheck) -> str | None:
    """Why an approved draft must not go out now (None: it may)."""
    if check.received_since_draft > 0:
        return f"payment_since_draft: £{check.received_since_draft:,.2f} received since the draft was written"
    if check.readiness_state != "ready":
        return (f"state_changed: the case is now {check.readiness_state.replace('_', ' ')}"
                + (f" ({', '.join(check.state_reasons)})" if check.state_reasons else ""))
    if check.contacts_recent >= check.contact_limit:
        return (f"contact_limit: {check.contacts_recent} contacts already in the last {check.limit_days} days (letters "
                "released, officers' contacts and the housing system's): no more until the oldest is older")
    return None


def records_of(draft: dict) -> tuple[str, ...]:
    """The protocol steps a released draft is, beyond a contact: a statement of arrears sent, a warning sent."""
    return tuple(content_rules()["stages"].get(str(draft["stage"]), {}).get("records", ()))


def release(db: Database, log: AuditLog, draft_id: str, actor: str, role: str, check: ReleaseCheck,
            day: date | None = None) -> dict:
    """Release an approved draft to the outbox, unless the case has changed since or an experiment now holds out
    its stage (then it is suppressed, with the reason). A release is a contact on `day` (default today) by the
    draft's channel, and each protocol step the draft carries (`records_of`), kept as case actions in the same
    transaction as the outbox row, so the contact limit at the next release and the next run count it. Either way
    the decision is final and in the audit trail."""
    reason = suppression(check)
    with db.transaction():
        found = draft(db, draft_id)
        if found["status"] != "approved":
            raise DraftRefused(f"Draft {draft_id} is {found['status']}: only an approved draft is released")
        held = held_out_reason(check.held_out, str(found["stage"]))
        reason = reason or (f"held_out: {held}" if held else None)
        status = "suppressed" if reason else "released"
        db.execute("UPDATE drafts SET status = ?, reason = ? WHERE draft_id = ?", [status, reason, draft_id])
        if reason is None:
            out = {"draft_id": draft_id, "tenancy_id": found["tenancy_id"], "channel": found["channel"],
                   "language": found["language"], "text": found["text"], "released_at": _now(), "released_by": actor,
                   "seq": _next_seq(db)}
            db.append("outbox", pd.DataFrame([out]), list(TABLES["outbox"]))
            contacts = release_contacts(found, day or date.today(), actor, records_of(found))
            db.append("case_actions", contacts, list(contacts.columns))
    detail = {"draft_id": draft_id, "channel": found["channel"]}
    if reason:
        log.append(actor, role, "draft_suppressed", found["tenancy_id"], detail | {"reason": reason.split(":")[0],
                                                                                    "why": reason})
    else:
        log.append(actor, role, "draft_released", found["tenancy_id"], detail | {
            "text_sha256": _digest(found["text"]), "day": str(day or date.today()),
            "recorded": ["contact_attempted", *records_of(found)]})
    return found | {"status": status, "reason": reason}


def outbox(db: Database, after_seq: int = 0, limit: int = OUTBOX_PAGE) -> pd.DataFrame:
    """What the landlord's sending system is to send: the messages after sequence number `after_seq`, in sequence
    order, at most `limit`. A consumer keeps the last `seq` it read and asks for what follows: it never misses a
    message nor reads one twice (a message's `draft_id` is its stable id, for dropping a repeat delivery)."""
    return db.query(f"SELECT * FROM outbox WHERE seq > ? ORDER BY seq LIMIT {int(limit)}", [int(after_seq)])


def facts_for_draft(ledger, case: dict, as_of: pd.Timestamp, actions: pd.DataFrame, rows: int = 12) -> DraftFacts:
    """A ready case's draft facts from the ledger on `as_of` (`case`: a worklist run's row with tenancy_id,
    readiness_state, state_reasons, protocol_step, policy_version, run_id): its balance and the latest `rows`
    postings as a statement, its weekly rent and vulnerability from the register, and its last missed promise."""
    tenancy_id = str(case["tenancy_id"])
    postings = ledger.read_for_tenancies("transactions", [tenancy_id]).sort_values(["posted_date", "transaction_id"])
    postings = postings[postings["posted_date"] <= as_of]
    running = postings["amount_pence"].cumsum() / 100
    register = ledger.read_for_tenancies("tenancy_register", [tenancy_id]).iloc[0]
    weekly = weekly_rent(float(register["rent_amount_pence"]), str(register["rent_frequency"])) / 100
    balance = float(running.iloc[-1]) if len(running) else 0.0
    statement = tuple({"date": f"{p.posted_date:%d/%m/%Y}", "item": str(p.type).replace("_", " "),
                       "amount": f"{p.amount_pence / 100:,.2f}", "balance": f"{b:,.2f}"}
                      for p, b in zip(postings.tail(rows).itertuples(), running.tail(rows), strict=True))
    missed = actions[(actions["tenancy_id"] == tenancy_id) & (actions["settled_as"] == "missed")]
    promise = None if missed.empty else {"made": missed["happened_on"].iloc[-1], "due": missed["due_on"].iloc[-1],
                                         "amount": int(missed["amount_pence"].iloc[-1]) / 100}
    return DraftFacts(
        tenancy_id=tenancy_id, as_of=str(pd.Timestamp(as_of).date()), readiness_state=str(case["readiness_state"]),
        protocol_step=case.get("protocol_step"), policy_version=str(case["policy_version"]),
        run_id=str(case["run_id"]), balance=round(balance, 2), arrears_weeks=max(balance, 0) / weekly if weekly else 0,
        vulnerable=_known(register.get("vulnerable")) is True, tenant_name=_known(register.get("tenant_name")),
        reasons=tuple(rule for rule, _ in case.get("state_reasons") or ()), promise=promise, statement=statement)


def _known(value):
    """A register value, None where it is missing (NaN, NA or blank)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)) or value == "":
        return None
    return value.item() if hasattr(value, "item") else value  # numpy scalars as Python values
