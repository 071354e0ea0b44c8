"""An officer's day (serving.runs.mycases) on a real case store: which promises and instalments are due on the
service's day, and which cases a missed one returned and nobody has acted on since."""

from __future__ import annotations

from datetime import date

import pandas as pd

from casework import cases
from casework.audit import AuditLog
from casework.settings import service_day
from casework.store import open_casework
from serving.runs import mycases
from tests.support.homes import isolated_home

DAY = date(2026, 11, 10)


def _day(n: int) -> date:
    return (pd.Timestamp(DAY) + pd.Timedelta(days=n)).date()


def test_the_service_day_is_arrears_today_else_the_system_date(tmp_path) -> None:
    with isolated_home(tmp_path / "home", ARREARS_TODAY="2026-11-10"):
        from serving.settings import get_settings

        assert service_day(get_settings()) == DAY
    with isolated_home(tmp_path / "other"):
        from serving.settings import get_settings

        assert service_day(get_settings()) == date.today()


def test_due_today_and_returned_cases_on_a_small_case_store(tmp_path) -> None:
    with isolated_home(tmp_path / "home"):
        from casework.settings import get_settings

        with open_casework(get_settings()) as db:
            log = AuditLog(db)
            record = lambda tenancy, **given: cases.record_action(  # noqa: E731
                db, log, tenancy, cases.OfficerAction(**given), "officer-1", "officer")
            record("T1", kind="promise_to_pay", amount=50, happened_on=_day(-3), due_on=DAY)  # due today
            record("T2", kind="promise_to_pay", amount=50, happened_on=_day(-3), due_on=_day(1))  # tomorrow
            record("T3", kind="arrangement_agreed", amount=20, instalments=4, happened_on=_day(-14))  # 2nd today
            record("T4", kind="arrangement_agreed", amount=20, instalments=4, every_days=14, happened_on=_day(-8),
                   due_on=_day(-7))  # next one a week away
            for tenancy in ("T5", "T6", "T7"):  # each misses a promise of £30
                record(tenancy, kind="promise_to_pay", amount=30, happened_on=_day(-9), due_on=_day(-5))
            record("T8", kind="promise_to_pay", amount=40, happened_on=_day(-6), due_on=DAY)  # paid early: kept
            received = pd.DataFrame({"tenancy_id": ["T3", "T4", "T8", "T5"],
                                     "posted_date": pd.to_datetime([_day(-6), _day(-5), _day(-3), _day(-4)]),
                                     "amount_pence": [-2000, -2000, -4000, -1000]})
            settled = cases.settle_commitments(db, log, received, pd.Timestamp(_day(-2)))
            record("T6", kind="contact_made", channel="phone", outcome="spoke_to_tenant", happened_on=_day(-1))
            record("T7", kind="note", note="left a card", happened_on=_day(-1))  # a note is not dealing with it
            found = mycases.commitments(db, [f"T{n}" for n in range(1, 9)], DAY)
    assert settled == {"kept": ["T8"], "missed": ["T5", "T6", "T7"]}
    assert {t: [r.code for r in reasons] for t, reasons in found.items()} == {
        "T1": ["promise_due"], "T3": ["instalment_due"], "T5": ["returned"], "T7": ["returned"]}
    assert found["T1"][0].amount_due == 50 and found["T1"][0].due_on == str(DAY)
    assert found["T3"][0].text == "Instalment 2 of 4 (£20.00) due today" and found["T3"][0].amount_due == 20
    returned = found["T5"][0]
    assert returned.due_on == str(_day(-5)) and returned.amount_due == 20  # £30 promised, £10 received
    assert returned.text == f"Returned: missed promise due {_day(-5)} (£20.00 not received)"


def test_an_instalment_falls_due_only_on_its_days() -> None:
    agreed = pd.DataFrame([{"tenancy_id": "T1", "kind": "arrangement_agreed", "happened_on": str(_day(-30)),
                            "due_on": str(_day(-28)), "every_days": 14, "instalments": 3, "amount_pence": 2500,
                            "settled_on": None}])
    assert mycases.due_today(agreed, _day(-28))["T1"][0].text == "Instalment 1 of 3 (£25.00) due today"
    assert mycases.due_today(agreed, _day(-21)) == {}  # between instalments
    assert mycases.due_today(agreed, DAY)["T1"][0].text.startswith("Instalment 3 of 3")
    assert mycases.due_today(agreed, _day(14)) == {}  # a 4th would fall here: there are only 3
    assert mycases.due_today(agreed.assign(settled_on=str(_day(-1))), _day(-28)) == {}  # settled: nothing due
