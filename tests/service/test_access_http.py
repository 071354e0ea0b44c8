"""Access by role and patch over real HTTP: a Bento built from the repo (`bentoml build`) serves the shared
pipeline's home with ARREARS_AUTH=required, principals are made with `arrears users add`, and every role × endpoint
× (no patch, own patch, another patch) is tried. Expected denials are denials, and no answer holds another patch's
tenancy. The same server is then fuzzed from its OpenAPI (schemathesis): no 5xx, every answer as typed; and its
readiness follows the feature store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from features.store.offline import live_path
from serving.access.declared import declared
from serving.access.principals import PATCH_ROLES, ROLES
from serving.api import service  # noqa: F401 - its endpoints declare their roles
from serving.api.process import PROJECT_ROOT, running_server
from serving.settings import get_settings
from tests.support.browser import browse
from tests.support.cli import cli_admin, ok
from tests.support.fuzz import fuzz_openapi
from tests.support.homes import isolated_home

#: Each endpoint's body, given the patch to name (None: name none) and the target (a tenancy or a draft of the
#: caller's own patch, or of another) for the endpoints that act on one case.
BODIES = {
    "/worklist": lambda patch, _: {"top": 10_000, "states": ["ready", "hold", "review", "disputed", "recent_payment",
                                                             "payment_plan", "ambiguous_balance", "blocked"],
                                   **({"patch": patch} if patch else {})},
    "/worklist_changes": lambda patch, _: {"patch": patch} if patch else {},
    "/monitoring_status": lambda patch, _: {"days": 30},
    "/cash_forecast": lambda patch, _: {"weeks": 13, **({"patch": patch} if patch else {})},
    "/cash_forecast_csv": lambda patch, _: {"weeks": 13, **({"patch": patch} if patch else {})},
    "/collection_kpis": lambda patch, _: {"months": 3, **({"patch": patch} if patch else {})},
    "/collection_kpis_csv": lambda patch, _: {"months": 3, **({"patch": patch} if patch else {})},
    "/case_file": lambda _, target: {"tenancy_id": target["tenancy"]},
    "/case_action": lambda _, target: {"tenancy_id": target["tenancy"], "kind": "note", "note": "access matrix"},
    "/case_reassign": lambda _, target: {"tenancy_id": target["tenancy"], "to": target["officer"],
                                         "reason": "workload"},
    "/draft": lambda _, target: {"tenancy_id": target["tenancy"], "channel": "letter"},
    "/approval_queue": lambda patch, _: {"patch": patch} if patch else {},
    "/draft_decision": lambda _, target: {"draft_id": target["draft"], "decision": "approve"},
    "/draft_release": lambda _, target: {"draft_id": target["draft"]},
    "/outbox": lambda _, target: {},
    "/delivery_receipt": lambda _, target: {"message_id": "no-such-message", "status": "sent"},
    "/my_cases": lambda _, target: {},
    "/subject_access": lambda _, target: {"tenancy_id": target["tenancy"]},
    "/access_log": lambda _, target: {"tenancy_id": target["tenancy"]},
    "/suspense_queue": lambda patch, _: {"top": 20},
    "/suspense_decide": lambda patch, _: {"receipt_id": "NO-SUCH-RECEIPT", "tenancy_id": "T000001",
                                          "decision": "reject"},
}
PATCHED = ("/worklist", "/worklist_changes", "/cash_forecast", "/cash_forecast_csv", "/collection_kpis",
           "/collection_kpis_csv", "/approval_queue")
#: Endpoints that act on one case (a tenancy, or a draft): tried on the caller's own patch's and another's.
TARGETED = ("/case_file", "/case_action", "/case_reassign", "/draft", "/draft_decision", "/draft_release",
            "/subject_access", "/access_log")
#: Endpoints that change a case: a second allowed caller may find it already changed (409), which is not a denial.
CHANGING = ("/draft", "/draft_decision", "/draft_release")


def _kinds(path: str) -> tuple[str, ...]:
    if path in PATCHED:
        return ("none", "own", "other")
    return ("own", "other") if path in TARGETED else ("none",)


def _token(name: str, role: str, patches: list[str]) -> str:
    result = ok("users", "add", name, "--role", role, *[a for p in patches for a in ("--patch", p)])
    return result.stdout.strip().splitlines()[-1]


def _build_bento(bentoml_home: Path) -> tuple[str, Path]:
    """`bentoml build` of this repo into `bentoml_home`: (the Bento's tag, its folder)."""
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # bentoml build looks for uv on PATH
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home), "PATH": path}
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    built = subprocess.run([bentoml, "build", str(PROJECT_ROOT), "--output", "tag"], env=env, capture_output=True,
                           text=True, timeout=600, cwd=PROJECT_ROOT)
    assert built.returncode == 0, built.stdout + built.stderr
    tag = built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    return tag, bentoml_home / "bentos" / name / version


def _targets(pipeline: dict, own: str, other: str) -> dict[str, dict]:
    """For each kind (own patch, another): a ready tenancy, a draft written for another ready one (by an officer
    who is not a caller, so any allowed caller may decide it), and an officer of that patch to reassign to."""
    from serving.runs.casework import draft_from_run
    from serving.settings import get_settings

    ready = [r for r in pipeline["everyone"]["rows"] if r["readiness_state"] == "ready"]
    targets = {}
    for kind, patch in (("own", own), ("other", other)):
        mine = [r["tenancy_id"] for r in ready if r["patch"] == patch]
        officer = f"test-officer-{kind}"
        token = _token(officer, "officer", [patch])
        written = _first_draft(mine[1:], lambda tenancy: draft_from_run(get_settings(), tenancy, "letter", "en",
                                                                         "matrix-officer", "officer"))
        targets[kind] = {"tenancy": mine[0], "draft": written["draft_id"], "officer": officer, "token": token}
    return targets


def _first_draft(tenancies: list[str], write) -> dict:
    """A draft `write` writes for the first of `tenancies` that can take one (a ready case under the protocol's
    arrears threshold is refused one, with its reason)."""
    from casework.drafts import DraftRefused

    refused = []
    for tenancy in tenancies:
        try:
            return write(tenancy)
        except DraftRefused as exc:
            refused.append(str(exc))
    raise AssertionError(f"no ready case could take a draft: {refused[:3]}")


def _champion_metrics(settings) -> dict[str, float]:
    from training import registry

    champion = registry.model_by_alias(settings, registry.RISK_MODEL, registry.CHAMPION)
    return {"version": champion.version, **registry.configure(settings).get_run(champion.run_id).data.metrics}


def _patches_of(pipeline: dict) -> dict[str, str]:
    return {r["tenancy_id"]: r["patch"] for r in pipeline["everyone"]["rows"]}


# No back-off on wrong tokens here: the matrix's bad and revoked tokens call every endpoint from one address (the
# back-off and lockout are tests/data/test_sessions.py's).
@pytest.fixture(scope="module")
def secured(pipeline: dict) -> dict:
    patch_of = _patches_of(pipeline)
    patches = sorted(set(patch_of.values()))
    own, area, other = patches[0], patches[:2], patches[-1]
    tag, bento = _build_bento(pipeline["root"] / "bentoml")
    # the service's day is the data's last day: what people record is judged on the run's date (docs/casework.md)
    with isolated_home(pipeline["home"], ARREARS_AUTH="required", BENTOML_HOME=str(pipeline["root"] / "bentoml"),
                       ARREARS_AUTH_CACHE_SECONDS="2", ARREARS_TODAY=pipeline["payload"]["as_of"][:10],
                       ARREARS_CLI_PRINCIPALS=cli_admin(), ARREARS_AUTH_FAILURES_FREE="1000000"):
        principals = {"officer": [own], "supervisor": area} | {r: [] for r in ROLES if r not in PATCH_ROLES}
        tokens = {role: _token(f"test-{role}", role, mine) for role, mine in principals.items()}
        revoked = _token("test-revoked", "admin", [])
        ok("users", "revoke", "test-revoked")
        revoked_live = {"Authorization": f"Bearer {_token('test-revoked-live', 'admin', [])}"}
        assert (settings := get_settings()).auth_required
        answers = []
        ids = [next(t for t, p in patch_of.items() if p == own), next(t for t, p in patch_of.items() if p == other)]
        targets = _targets(pipeline, own, other)
        with running_server(settings, target=tag) as url, httpx.Client(base_url=url, timeout=300) as client:
            callers = {**{role: {"Authorization": f"Bearer {t}"} for role, t in tokens.items()},
                       "no token": {}, "bad token": {"Authorization": "Bearer arr_not-a-token"},
                       "revoked": {"Authorization": f"Bearer {revoked}"}, "basic": {"Authorization": "Basic eDp5"}}
            for caller, headers in callers.items():
                for path in declared("endpoint"):
                    for kind in _kinds(path):
                        patch = {"none": None, "own": own, "other": other}[kind]
                        body = {"tenancy_ids": ids} if path == "/score" else BODIES[path](patch, targets.get(kind))
                        response = client.post(path, json=body, headers=headers)
                        answers.append({"caller": caller, "path": path, "patch": kind, "status": response.status_code,
                                        "body": response.text})
            tagged = client.post("/worklist", json={"top": 5}, headers={**callers["admin"], "X-Request-ID": "rid-0042"})
            revocation = [client.post("/monitoring_status", json={}, headers=revoked_live).status_code]
            ok("users", "revoke", "test-revoked-live")  # while the service runs, having trusted the token
            time.sleep(settings.auth_cache_seconds + 0.5)
            revocation.append(client.post("/monitoring_status", json={}, headers=revoked_live).status_code)
            # The leak check reads the log of the real requests above: the fuzzer's random strings are echoed in
            # its 4xx messages and once matched a register value ("other") by chance, which says nothing of a leak.
            logged = (settings.logs_dir / "serve.log").stat().st_size
            web_revoked = _token("test-revoked-web", "data_scientist", [])
            web = browse(url, tokens, other_case=ids[1], other_patch=other, revocable=(web_revoked, lambda: (
                ok("users", "revoke", "test-revoked-web"), time.sleep(settings.auth_cache_seconds + 0.5))),
                reassign=(_spare_ready(pipeline, own, 2), "test-officer"), protocol=_at_statement(pipeline, own))
            web["my_cases_http"] = _my_cases_over_http(client, callers, targets, _spare_ready(pipeline, own, 3))
            web["api_forecast"] = client.post("/cash_forecast", json={"weeks": 13},
                                              headers=callers["treasury"]).json()
            web["champion_metrics"] = _champion_metrics(settings)
            fuzzed = fuzz_openapi(url, headers=callers["admin"], examples=10)
            metrics = client.get("/metrics").text
            health = [client.get("/readyz").status_code]
            live = live_path(settings)
            live.rename(live.with_suffix(".away"))  # the online store's population gone: not ready
            try:
                health.append(client.get("/readyz").status_code)
            finally:
                live.with_suffix(".away").rename(live)
            health.append(client.get("/readyz").status_code)
        log = (settings.logs_dir / "serve.log").read_bytes()[:logged].decode(errors="replace")
    return {"answers": answers, "principals": principals, "patch_of": patch_of, "other": other, "ids": ids,
            "fuzzed": fuzzed, "health": health, "revocation": revocation, "bento": bento, "metrics": metrics,
            "log": log, "tagged": tagged.headers.get("x-request-id"), "web": web}


def _expected(caller: str, path: str, patch: str) -> set[int]:
    if caller not in ROLES:
        return {401}
    if caller not in declared("endpoint")[path]:
        return {403}
    if patch == "other" and caller in PATCH_ROLES:
        return {404} if path in TARGETED else {403}  # another patch's case is not found, like one that does not exist
    if path == "/delivery_receipt":
        return {404}  # let in, and told the message is not in the outbox
    if path == "/suspense_decide":
        return {404}  # let in, and told there is no such receipt in suspense
    return {200, 409} if path in CHANGING else {200}


def test_every_role_endpoint_and_patch_is_answered_as_the_matrix_says(secured) -> None:
    wrong = [(a["caller"], a["path"], a["patch"], a["status"], a["body"][:200]) for a in secured["answers"]
             if a["status"] not in _expected(a["caller"], a["path"], a["patch"])]
    assert not wrong, wrong
    tried = {(a["caller"], a["path"], a["patch"]) for a in secured["answers"]}
    assert len(tried) == len(secured["answers"]) >= 9 * 14
    done = {(a["path"], a["patch"]) for a in secured["answers"] if a["status"] == 200}
    assert {(path, kind) for path in CHANGING for kind in ("own", "other")} <= done  # each change made once
    denied = [a for a in secured["answers"] if a["status"] in (401, 403, 404)]
    assert len(denied) > len(secured["answers"]) / 2
    # every refusal says what to do
    assert all("error" in a["body"] and len(a["body"]) > 40 for a in denied)
    assert secured["health"][0] == 200  # health needs no token


def test_who_looked_at_a_case_is_recorded_and_only_admins_read_it_or_export_it(secured) -> None:
    """The matrix's own calls, in its order (officers first, admins later): the admin's access log of the officer's
    own-patch target holds the officer's case-file read; the admin's export of it is a zip; nobody else gets
    either (403, in the matrix)."""
    def answer(caller: str, path: str) -> dict:
        return next(a for a in secured["answers"] if (a["caller"], a["path"], a["patch"]) == (caller, path, "own"))

    reads = json.loads(answer("admin", "/access_log")["body"])["reads"]
    assert {("test-officer", "officer", "case_file"), ("test-supervisor", "supervisor", "case_file")} <= {
        (r["principal"], r["role"], r["what"]) for r in reads}
    export = answer("admin", "/subject_access")
    assert export["status"] == 200 and export["body"][:2] == "PK"  # a zip
    for caller in ("officer", "supervisor", "data_scientist", "treasury", "sender"):
        assert answer(caller, "/access_log")["status"] == answer(caller, "/subject_access")["status"] == 403


def test_a_token_revoked_while_the_service_runs_stops_working_within_the_cache_time(secured) -> None:
    assert secured["revocation"] == [200, 401]


def test_the_bento_holds_the_service_and_its_packages_and_is_ready_only_with_its_stores(secured) -> None:
    bento = secured["bento"]
    assert (bento / "src" / "serving" / "api" / "service.py").exists()
    assert (bento / "src" / "training" / "params").exists()
    assert (bento / "src" / "casework" / "templates" / "outreach" / "first_reminder.en.letter.j2").exists()
    assert not (bento / "src" / "tests").exists() and not (bento / "src" / "mlflow" / "__init__.py").exists()
    wanted = (bento / "env" / "python" / "requirements.txt").read_text()
    assert all(name in wanted for name in ("bentoml", "feast", "lightgbm", "mlflow", "shap", "holidays"))
    assert secured["health"] == [200, 503, 200]


def test_no_answer_holds_another_patchs_tenancy(secured) -> None:
    import json

    patch_of, leaks, checked = secured["patch_of"], [], 0
    for answer in secured["answers"]:
        mine = secured["principals"].get(answer["caller"])
        if answer["status"] != 200 or answer["caller"] not in PATCH_ROLES:
            continue
        body = json.loads(answer["body"])
        seen = set()
        if answer["path"] == "/score":
            seen = {s["tenancy_id"] for s in body["scores"]}
            assert secured["ids"][1] in body["unknown"]  # another patch's tenancy: answered as unknown
        elif answer["path"] == "/worklist":
            seen = {r["tenancy_id"] for r in body["rows"]}
            assert seen, answer  # not vacuous: the caller's own cases are there
        elif answer["path"] in TARGETED:
            seen = {body.get("tenancy_id")} - {None}  # a recorded action names no tenancy
        elif answer["path"] == "/approval_queue":
            seen = {d["tenancy_id"] for d in body["drafts"]}
        elif answer["path"] == "/my_cases":
            seen = {c["tenancy_id"] for c in body["cases"]}
        elif answer["path"] == "/worklist_changes":
            seen = set(body["entered"]) | set(body["left"]) | {c["tenancy_id"] for c in body["state_changes"]} | {
                m["tenancy_id"] for m in body["score_moves"]} | {p["tenancy_id"] for p in body["payments"]}
        checked += len(seen)
        leaks += [(answer["caller"], answer["path"], t) for t in seen if patch_of.get(t) not in mine]
    assert not leaks and checked > 100


def test_fuzzing_the_openapi_finds_no_server_error_and_no_untyped_answer(secured) -> None:
    fuzzed = secured["fuzzed"]
    print(fuzzed["summary"], *fuzzed["failures"], sep="\n")  # whole (an assertion's repr cuts them short)
    assert fuzzed["operations"] == len(declared("endpoint")) and fuzzed["cases"] >= 120
    assert not fuzzed["failures"], fuzzed["failures"][:5]


def test_metrics_and_logs_say_what_happened_and_nothing_about_any_tenant(secured, pipeline) -> None:
    import json
    import re

    from features.feeds.contract import MONITORING_ONLY_COLUMNS, PERSONAL_COLUMNS

    metrics, log = secured["metrics"], secured["log"]
    for name in ("arrears_requests_total", "arrears_request_seconds_bucket", "arrears_cases_served_total",
                 "arrears_unscored_ids_total", "arrears_model_version_served", "arrears_worklist_run_population",
                 "arrears_worklist_generation_seconds"):
        assert name in metrics, name
    assert re.search(r'arrears_requests_total\{endpoint="/worklist",status="403"\} [1-9]', metrics)
    lines = [json.loads(line[line.index("{"):]) for line in log.splitlines() if '"request_id"' in line]
    assert len(lines) >= len(secured["answers"]) and {"endpoint", "status", "ms", "role"} <= set(lines[-1])
    assert secured["tagged"] == "rid-0042" and any(line["request_id"] == "rid-0042" for line in lines)
    register = pipeline["portfolio"].tenancies
    words = {*PERSONAL_COLUMNS, *MONITORING_ONLY_COLUMNS} | {
        v for c in MONITORING_ONLY_COLUMNS if c in register for v in register[c].astype(str).unique() if len(v) > 4}
    tenancies = set(register["tenancy_id"].astype(str))
    for text, where in ((metrics, "metrics"), (log, "log")):
        assert not [w for w in words if re.search(rf"\b{re.escape(w)}\b", text)], where
        assert not tenancies & set(re.findall(r"\bT\d{4,}\b", text)), where  # no tenancy id either


def test_an_officer_signs_in_sees_only_their_patch_and_reads_the_top_cases_reasons(secured) -> None:
    officer = secured["web"]["officer"]
    own = secured["principals"]["officer"]
    assert officer["sign_in_page"] and officer["signed_in_status"] == 200
    assert officer["heading"].startswith("Ready cases")
    assert officer["rows"] > 0 and officer["patches"] == own  # only their patch, on a page of real cases
    assert officer["case_heading"] == f"Case {officer['top_case']}"
    assert officer["reasons"][0].startswith("Base value") and len(officer["reasons"]) >= 3  # base, reasons, rest
    assert not officer["tablet_overflow"]  # nothing wider than a tablet's screen


def test_an_officer_cannot_open_another_patchs_case_by_its_url(secured) -> None:
    officer = secured["web"]["officer"]
    assert officer["other_case_status"] == 404
    assert "in the patches you see" in officer["other_case_text"]
    assert "Risk that arrears grow" not in officer["other_case_text"] and "Why" not in officer["other_case_text"]


def test_an_officer_cannot_open_another_patchs_list_or_another_roles_pages(secured) -> None:
    refused = secured["web"]["officer"]["refused"]
    assert set(refused.values()) == {403} and len(refused) == 6, refused


def test_every_page_an_officer_visits_has_no_serious_accessibility_violation(secured) -> None:
    """axe-core in the browser, on each page of the officer's journey (sign-in, worklist at laptop and tablet width,
    case, not found): no violation of serious or critical impact."""
    checked = secured["web"]["officer"]["axe"]
    assert set(checked) == {"signin", "worklist", "case", "not_found", "worklist_tablet"}
    assert all(not rules for rules in checked.values()), checked


def test_the_web_app_refuses_a_bad_token_and_a_revoked_one(secured) -> None:
    refused = secured["web"]["refused"]
    assert refused["bad_token_status"] == 401 and "not valid" in refused["bad_token_text"]
    assert refused["before_revocation"] == 200 and refused["after_revocation_url"].endswith("/app/signin?ended=revoked")


def test_an_officers_case_page_shows_the_statement_state_and_run_history(secured) -> None:
    statement = secured["web"]["officer"]["statement"]
    assert statement["balance"] == 1 and statement["history"] >= 1
    assert statement["state"].startswith("State: ")


def test_a_supervisor_sees_their_area_sorts_by_tenancy_and_narrows_to_one_patch(secured) -> None:
    supervisor, area = secured["web"]["supervisor"], secured["principals"]["supervisor"]
    assert supervisor["patches"] == area  # both patches of the area, no other
    assert supervisor["sorted_ids"] == sorted(supervisor["sorted_ids"]) and len(supervisor["sorted_ids"]) > 1
    assert supervisor["sort_header"].startswith("Tenancy")
    assert f"patch={area[-1]}" in supervisor["url"] and "sort=tenancy" in supervisor["url"]
    assert supervisor["filtered_patches"] == [area[-1]]


def test_a_supervisor_approves_an_edited_draft_and_the_case_shows_both_versions_and_the_decisions(secured) -> None:
    approval = secured["web"]["supervisor"]["approval"]
    assert "no_draft_page" not in approval, approval
    assert approval["edited"] != approval["original"]
    assert [v.split(" · ")[0] for v in approval["versions"]][-2:] == ["Version 1", "Version 2"]
    assert "edited" in approval["versions"][-2] and "approved" in approval["versions"][-1]
    assert [t.strip() for t in approval["texts"][-2:]] == [approval["original"].strip(), approval["edited"].strip()]
    drafted = [d for d in approval["decisions"] if d.startswith("draft")]
    assert drafted[-3:] == ["draft generated", "draft edited", "draft approved"]


def test_treasury_downloads_the_forecast_csv_and_its_totals_match_the_api(secured) -> None:
    import io

    import pandas as pd

    treasury, api = secured["web"]["treasury"], secured["web"]["api_forecast"]
    assert treasury["heading"].startswith("Expected receipts") and treasury["band"] == 1
    assert not treasury["tablet_overflow"]
    csv = pd.read_csv(io.StringIO(treasury["csv"]))
    answered = pd.DataFrame(api["rows"])
    assert set(csv["scope"]) == set(answered["scope"]) and len(csv) == len(answered) > 13
    assert treasury["scopes"] == list(dict.fromkeys(answered["scope"]))  # the per-patch table: every scope
    for column in ("mean", "p10", "p50", "p90"):
        downloaded = csv.groupby("scope")[column].sum()
        expected = answered.groupby("scope")[column].sum()
        assert (downloaded - expected).abs().max() < 0.01 * 13, column  # rounded to the penny, week by week
    assert set(csv["as_of"]) == {api["as_of"]} and set(csv["model_version"].astype(str)) == {api["model_version"]}
    assert treasury["worklist_status"] == 403 and treasury["worklist_heading"] == "Not a page for your role"


def test_a_data_scientist_sees_the_champions_metrics_against_the_baselines(secured) -> None:
    seen, champion = secured["web"]["data_scientist"], secured["web"]["champion_metrics"]
    assert seen["heading"] == "Models and monitoring" and not seen["tablet_overflow"]
    assert seen["columns"][1] == f"Champion v{champion['version']}" and "Balance baseline" in seen["columns"]
    assert seen["metrics"]["AUC"][0] == f"{champion['auc']:.3f}"
    assert seen["metrics"]["AUC"][-1] == f"{champion['auc_rule_baseline']:.3f}"
    assert seen["metrics"]["Precision at capacity"][0] == f"{champion['precision_at_capacity']:.3f}"
    assert seen["report_status"] == 200 and seen["report_type"].startswith("text/html") and seen["report_is_drift"]
    # the experiments page, from the top bar: the shipped example experiment, with no report yet
    assert seen["experiments_status"] == 200 and seen["experiments_heading"] == "Experiments"
    assert "reminder-holdout-example (not enabled)" in seen["experiments_text"]
    assert "No report yet: arrears experiment report reminder-holdout-example" in seen["experiments_text"]


def test_every_other_roles_page_has_no_serious_accessibility_violation(secured) -> None:
    web = secured["web"]
    checked = {**web["supervisor"]["axe"], **web["treasury"]["axe"], **web["data_scientist"]["axe"]}
    assert set(checked) == {"supervisor_worklist", "approvals", "case_casework", "treasury", "models", "experiments"}
    assert all(not rules for rules in checked.values()), checked


# -- an officer's day: my cases, and a supervisor's reassignment (issue 27 item 5) ---------------------------------
def _at_statement(pipeline: dict, patch: str) -> str:
    """The last ready case of `patch` whose next step is a rent statement: none of the matrix's or the officer's
    day's cases."""
    ready = [r for r in pipeline["everyone"]["rows"] if r["readiness_state"] == "ready" and r["patch"] == patch]
    return [r for r in ready if r["protocol_step"] == "statement"][-1]["tenancy_id"]


def _spare_ready(pipeline: dict, patch: str, n: int) -> str:
    """The `n`th ready case of `patch` (the matrix's targets are the first two)."""
    return [r["tenancy_id"] for r in pipeline["everyone"]["rows"] if r["readiness_state"] == "ready"
            and r["patch"] == patch][n]


def _my_cases_over_http(client: httpx.Client, callers: dict, targets: dict, stray: str) -> dict:
    """`/my_cases` for each officer, after the matrix gave each target's case to its patch's officer and the browser
    journey gave a case to test-officer; `stray`, a case of test-officer's patch, is given to the other patch's
    officer straight in the case store (as if their patches had changed since): it must stay off their list."""
    from casework import cases
    from casework.audit import AuditLog
    from casework.store import open_casework

    with open_casework(get_settings()) as db:
        cases.reassign(db, AuditLog(db), stray, targets["other"]["officer"], "test", "cli", "other")
    bearer = {kind: {"Authorization": f"Bearer {t['token']}"} for kind, t in targets.items()}
    ask = {"officer": (callers["officer"], {}), "own": (bearer["own"], {}), "other": (bearer["other"], {}),
           "supervisor_for_officer": (callers["supervisor"], {"officer": "test-officer"}),
           "officer_for_other": (callers["officer"], {"officer": targets["own"]["officer"]})}
    found = {"stray": stray}
    for name, (headers, body) in ask.items():
        response = client.post("/my_cases", json=body, headers=headers)
        found[name] = {"status": response.status_code, "body": response.json() if response.is_success else
                       response.text}
    found["worklist"] = client.post("/worklist", json={"top": 10_000}, headers=callers["admin"]).json()
    return found


def test_my_cases_over_http_hold_only_the_callers_own_cases_of_their_patches(secured) -> None:
    mine, patch_of = secured["web"]["my_cases_http"], secured["patch_of"]
    own_patch, other_patch = secured["principals"]["officer"][0], secured["other"]
    reassigned = secured["web"]["reassign"]["url"].split("tenancy=")[1].split("#")[0]
    listed = {name: [c["tenancy_id"] for c in mine[name]["body"]["cases"]] for name in ("officer", "own", "other")}
    assert reassigned in listed["officer"] and mine["officer"]["body"]["officer"] == "test-officer"
    assert {patch_of[t] for t in listed["officer"] + listed["own"]} == {own_patch}
    assert listed["other"] and {patch_of[t] for t in listed["other"]} == {other_patch}  # not vacuous, and scoped
    assert mine["stray"] not in listed["other"] and not set(listed["other"]) & set(listed["officer"] + listed["own"])
    assert not set(listed["officer"]) & set(listed["own"])  # each officer sees their own cases only
    assert mine["supervisor_for_officer"]["status"] == 200
    assert [c["tenancy_id"] for c in mine["supervisor_for_officer"]["body"]["cases"]] == listed["officer"]
    assert mine["officer_for_other"]["status"] == 403  # another officer's list is not an officer's to read
    case = next(c for c in mine["officer"]["body"]["cases"] if c["tenancy_id"] == reassigned)
    assert case["readiness_state"] == "ready" and case["why"][0]["code"] == "ready" and case["protocol_step"]


def test_the_worklist_names_each_cases_owner(secured) -> None:
    """What naming the owners costs is measured in bench/worklist.py (owners), not here."""
    mine = secured["web"]["my_cases_http"]
    owners = {r["tenancy_id"]: r["owner"] for r in mine["worklist"]["rows"]}
    reassigned = secured["web"]["reassign"]["url"].split("tenancy=")[1].split("#")[0]
    assert owners[reassigned] == "test-officer"
    assert set(owners.values()) - {None}  # owners are named, not only the one reassigned


def test_a_supervisor_reassigns_a_case_on_its_page_and_the_page_names_the_new_owner(secured) -> None:
    reassign = secured["web"]["reassign"]
    assert {"test-officer", "test-officer-own"} <= set(o.split(" (")[0] for o in reassign["choices"])
    assert reassign["status"] == 200 and reassign["url"].endswith("#casework")
    assert reassign["after"].startswith("Owner: test-officer owns the next action")
    assert reassign["decisions"][-1] == "case reassigned" and not reassign["axe"]["case_reassign_form"]


def test_an_officer_signs_in_to_my_cases_and_finds_the_case_given_to_them(secured) -> None:
    landed = secured["web"]["my_cases"]
    reassigned = secured["web"]["reassign"]["url"].split("tenancy=")[1].split("#")[0]
    assert landed["status"] == 200 and landed["url"].endswith("/app/my-cases")
    assert landed["heading"].startswith("My cases on ") and landed["current"] == ["My cases"]
    assert reassigned in landed["cases"]
    assert landed["why"][landed["cases"].index(reassigned)].startswith("Ready: ")
    assert not landed["axe"]["my_cases"] and not landed["tablet_overflow"]


def test_an_officer_records_a_rent_statement_and_a_supervisor_a_notice_and_the_page_judges_each_at_once(
        secured) -> None:
    """Issue 27: the protocol's steps recorded on the case page are judged at once, without waiting for a run."""
    found = secured["web"]["protocol"]
    assert found["landed"][0] == 200 and found["landed"][1].endswith("/app/my-cases")
    assert "notice served" not in found["officer_kinds"]  # a supervisor's decision
    statement, notice = found["statement"], found["notice"]
    assert statement["status"] == 200 and "rent statement sent" in statement["actions"]
    assert found["before"] == "statement"  # judged now as the run judged it: the service's day is the run's
    assert statement["step"] not in ("statement", None)  # a current statement moves the case on along the protocol
    assert (notice["status"], notice["state"], notice["step"]) == (200, "ready", "notice_running")
    assert "next step notice running" in " ".join(notice["said"].split())
    assert "notice served" in notice["actions"] and not found["axe"]["case_judged_now"]


def test_a_sender_token_reads_the_outbox_and_posts_receipts_and_is_refused_everything_else(secured) -> None:
    """Least privilege for the landlord's sending system (issue 28)."""
    mine = {(a["path"], a["status"]) for a in secured["answers"] if a["caller"] == "sender"}
    allowed = {path for path, status in mine if status not in (401, 403)}
    assert allowed == {"/outbox", "/delivery_receipt"}
    assert {status for path, status in mine if path not in allowed} == {403}
