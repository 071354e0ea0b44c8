"""The web app's journeys in a real browser: Debian's chromium driven by Playwright (no browser download).

Each journey signs in as a role through the sign-in page, walks the pages a person of that role would, and saves a
screenshot per step under `test-artifacts/web/` (kept after the run; the note lists them).
"""

from __future__ import annotations

from serving.api.process import PROJECT_ROOT

CHROMIUM = "/usr/bin/chromium"
SHOTS = PROJECT_ROOT / "test-artifacts" / "web"


def _sign_in(page, url: str, token: str) -> int:
    page.goto(f"{url}/app/worklist")  # nobody signed in: sent to the sign-in page
    page.get_by_label("Token").fill(token)
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Sign in").click()
    response = navigation.value
    return response.status if response else 0


#: What every visited page's accessibility check found serious or critical (axe-core): page name → rule ids.
SERIOUS = ("serious", "critical")


def _axe(page, name: str, found: dict) -> None:
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    found.setdefault("axe", {})[name] = sorted(v["id"] for v in violations if v.get("impact") in SERIOUS)


def _shot(page, name: str) -> str:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return str(path.relative_to(PROJECT_ROOT))


def _overflows_tablet(page) -> bool:
    """Whether the page, laid out at a tablet's 768 px, is wider than the screen (then back to a laptop's)."""
    page.set_viewport_size({"width": 768, "height": 1024})
    wider = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    page.set_viewport_size({"width": 1280, "height": 900})
    return wider


def officer_journey(browser, url: str, token: str, other_case: str, other_patch: str) -> dict:
    """An officer signs in, sees their ready cases, opens the top one and reads its reasons; opening another patch's
    case by its URL finds nothing; the page works at tablet width."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    found: dict = {"sign_in_page": None}
    page.goto(f"{url}/app/worklist")
    found["sign_in_page"] = page.url.endswith("/app/signin")
    _axe(page, "signin", found)
    found["signed_in_status"] = _sign_in(page, url, token)
    page.goto(f"{url}/app/worklist")  # an officer lands on my cases (my_cases_journey); the worklist is a click on
    found["heading"] = page.get_by_role("heading", level=1).inner_text()
    rows = page.locator("table.cases tbody tr")
    found["rows"] = rows.count()
    found["patches"] = sorted(set(page.locator("table.cases tbody tr td:nth-child(3)").all_inner_texts()))
    found["shots"] = [_shot(page, "officer_worklist")]
    _axe(page, "worklist", found)
    first = rows.first.locator("td:nth-child(2) a")
    found["top_case"] = first.inner_text()
    first.click()
    page.wait_for_url(f"**/app/case?tenancy={found['top_case']}")
    found["case_heading"] = page.get_by_role("heading", level=1).inner_text()
    found["reasons"] = page.locator("table.waterfall tbody th").all_inner_texts()
    found["statement"] = {"balance": page.locator("svg.statement path.balance").count(),
                          "history": page.locator("table.history tbody tr").count(),
                          "state": page.get_by_role("heading", level=2).first.inner_text()}
    found["shots"].append(_shot(page, "officer_case"))
    _axe(page, "case", found)
    response = page.goto(f"{url}/app/case?tenancy={other_case}")
    found["other_case_status"] = response.status
    found["other_case_text"] = page.locator("main").inner_text()
    found["shots"].append(_shot(page, "officer_other_patch_case"))
    _axe(page, "not_found", found)
    others = (f"/worklist?patch={other_patch}", "/treasury", "/models", "/treasury/forecast.csv",
              "/report?job=drift&name=html", "/experiments")
    found["refused"] = {path: page.goto(f"{url}/app{path}").status for path in others}
    page.set_viewport_size({"width": 768, "height": 1024})
    page.goto(f"{url}/app/worklist")
    found["tablet_overflow"] = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    found["shots"].append(_shot(page, "officer_worklist_tablet"))
    _axe(page, "worklist_tablet", found)
    page.close()
    return found


def supervisor_journey(browser, url: str, token: str) -> dict:
    """A supervisor sees the cases of the patches of their area, orders them by tenancy from the column heading,
    narrows to one patch with the filter; the URL keeps both."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, url, token)
    found: dict = {"patches": sorted(set(page.locator("td[data-label=Patch]").all_inner_texts()))}
    page.get_by_role("link", name="Tenancy", exact=True).click()
    page.wait_for_url("**sort=tenancy**")
    found["sorted_ids"] = page.locator("td[data-label=Tenancy]").all_inner_texts()
    found["sort_header"] = page.locator("th[aria-sort]").inner_text()
    page.get_by_label("Patch").select_option(found["patches"][-1])
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**patch=**")
    found["url"] = page.url
    found["filtered_patches"] = sorted(set(page.locator("td[data-label=Patch]").all_inner_texts()))
    found["shots"] = [_shot(page, "supervisor_worklist_one_patch_by_tenancy")]
    _axe(page, "supervisor_worklist", found)
    found["approval"] = _approve_edited(page, url, found)
    page.close()
    return found


def _approve_edited(page, url: str, found: dict) -> dict:
    """On the approvals page, the supervisor edits the first waiting draft and approves it; the case page then
    shows both versions, and the decisions the audit trail holds."""
    page.goto(f"{url}/app/approvals")
    _axe(page, "approvals", found)
    draft = page.locator("article.draft").first
    if not page.locator("article.draft h3 a").count():
        return {"no_draft_page": page.locator("main").inner_text()}
    case = draft.locator("h3 a").inner_text()
    box = draft.get_by_label("Text (edit before approving if it needs it)")
    original = box.input_value()
    edited = original.replace("Income Team", "Income Team (edited by your supervisor)")
    box.fill(edited)
    found["shots"].append(_shot(page, "supervisor_approvals"))
    draft.get_by_role("button", name="Approve").click()
    page.wait_for_url("**/app/approvals")
    page.goto(f"{url}/app/case?tenancy={case}#casework")
    versions = page.locator("#casework article.draft")
    found["shots"].append(_shot(page, "supervisor_case_casework"))
    _axe(page, "case_casework", found)
    return {"case": case, "original": original, "edited": edited,
            "versions": [v.locator("p").first.inner_text() for v in versions.all()],
            "texts": [v.locator("pre").inner_text() for v in versions.all()],
            "decisions": page.locator("table.audit tbody td:nth-child(4)").all_inner_texts()}


def treasury_journey(browser, url: str, token: str) -> dict:
    """Treasury lands on the forecast, reads the fan chart and the per-patch table, downloads the CSV; the case
    pages are not theirs."""
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    _sign_in(page, url, token)
    found: dict = {"heading": page.get_by_role("heading", level=1).inner_text(),
                   "band": page.locator("svg.fan path.band").count(),
                   "scopes": page.locator("table.patches tbody th").all_inner_texts()}
    found["shots"] = [_shot(page, "treasury_forecast")]
    _axe(page, "treasury", found)
    found["tablet_overflow"] = _overflows_tablet(page)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the forecast (CSV, every patch)").click()
    saved = SHOTS / download.value.suggested_filename
    download.value.save_as(saved)
    found["csv"] = saved.read_text()
    response = page.goto(f"{url}/app/worklist")
    found["worklist_status"], found["worklist_heading"] = response.status, page.get_by_role("heading",
                                                                                            level=1).inner_text()
    page.close()
    return found


def data_scientist_journey(browser, url: str, token: str) -> dict:
    """A data scientist lands on models and monitoring, reads the champion's metrics against the baselines, and
    opens the latest drift report."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, url, token)
    found: dict = {"heading": page.get_by_role("heading", level=1).inner_text()}
    table = page.locator("table.metrics").first
    found["columns"] = table.locator("thead th").all_inner_texts()
    found["metrics"] = {row.locator("th").inner_text().split(" (")[0]: row.locator("td").all_inner_texts()
                        for row in table.locator("tbody tr").all()}
    found["shots"] = [_shot(page, "data_scientist_models")]
    _axe(page, "models", found)
    found["tablet_overflow"] = _overflows_tablet(page)
    with page.expect_navigation() as report:
        page.get_by_role("link", name="drift: report").click()
    found["report_status"], found["report_type"] = report.value.status, report.value.headers.get("content-type", "")
    found["report_is_drift"] = "Dataset Drift" in page.content()  # Evidently's drift metric, in the page's data
    page.goto(f"{url}/app/models")
    with page.expect_navigation() as experiments:
        page.get_by_role("link", name="Experiments", exact=True).click()
    found["experiments_status"] = experiments.value.status
    found["experiments_heading"] = page.get_by_role("heading", level=1).inner_text()
    found["experiments_text"] = page.locator("main").inner_text()
    found["shots"].append(_shot(page, "data_scientist_experiments"))
    _axe(page, "experiments", found)
    page.close()
    return found


def refused_journeys(browser, url: str, token: str, revoke) -> dict:
    """A bad token is refused at sign-in; `token`, revoked after signing in with it (`revoke()` revokes it and
    waits out the auth cache), opens no more pages."""
    page = browser.new_page()
    found = {"bad_token_status": _sign_in(page, url, "arr_not-a-token"),
             "bad_token_text": page.get_by_role("alert").inner_text()}
    context = browser.new_context()
    other = context.new_page()
    found["before_revocation"] = _sign_in(other, url, token)
    revoke()
    other.goto(f"{url}/app/models")
    found["after_revocation_url"] = other.url
    page.close()
    context.close()
    return found


def browse(url: str, tokens: dict[str, str], other_case: str, other_patch: str, revocable: tuple,
           reassign: tuple[str, str] | None = None, protocol: str | None = None) -> dict:
    """Every role's journey; `revocable` is a token and the function that revokes it; `reassign` a case of the
    supervisor's area and the officer (the signed-in one) the supervisor gives it to; `protocol` a ready case of the
    officer's patch to record the protocol's steps on."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            return {"officer": officer_journey(browser, url, tokens["officer"], other_case, other_patch),
                    "supervisor": supervisor_journey(browser, url, tokens["supervisor"]),
                    "treasury": treasury_journey(browser, url, tokens["treasury"]),
                    "data_scientist": data_scientist_journey(browser, url, tokens["data_scientist"]),
                    "refused": refused_journeys(browser, url, *revocable),
                    **(officers_day(browser, url, tokens, *reassign) if reassign else {}),
                    **({"protocol": protocol_journey(browser, url, tokens, protocol)} if protocol else {})}
        finally:
            browser.close()


# -- an officer's day: my cases, and a supervisor's reassignment (issue 27 item 5) ---------------------------------
def reassign_journey(browser, url: str, token: str, tenancy: str, to: str) -> dict:
    """A supervisor opens a case of their area and gives it to another officer of its patch, with a reason, from the
    case page; the case page then names the new owner, and its decisions hold the reassignment."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, url, token)
    page.goto(f"{url}/app/case?tenancy={tenancy}#casework")
    owner = page.locator("#casework p").first
    found: dict = {"before": owner.inner_text(), "choices": page.locator("#reassign-to option").all_inner_texts()}
    _axe(page, "case_reassign_form", found)
    page.get_by_label("Give to").select_option(to)
    page.locator("#reassign-reason").select_option("workload")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Reassign").click()
    found["status"], found["url"] = navigation.value.status, page.url
    found["after"] = page.locator("#casework p").first.inner_text()
    found["decisions"] = page.locator("table.audit tbody td:nth-child(4)").all_inner_texts()
    found["shots"] = [_shot(page, "supervisor_case_reassigned")]
    page.close()
    return found


def my_cases_journey(browser, url: str, token: str) -> dict:
    """An officer signs in and lands on my cases: the cases they own that want something today, each with why; the
    top bar marks the page; it works at tablet width."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    found: dict = {"status": _sign_in(page, url, token)}
    found["url"], found["heading"] = page.url, page.get_by_role("heading", level=1).inner_text()
    found["current"] = page.locator("header nav a[aria-current=page]").all_inner_texts()
    found["cases"] = page.locator("table.mine td[data-label=Tenancy]").all_inner_texts()
    found["why"] = page.locator("table.mine td[data-label=Why]").all_inner_texts()
    found["shots"] = [_shot(page, "officer_my_cases")]
    _axe(page, "my_cases", found)
    found["tablet_overflow"] = _overflows_tablet(page)
    page.close()
    return found


def officers_day(browser, url: str, tokens: dict[str, str], tenancy: str, officer: str) -> dict:
    """The supervisor gives `tenancy` to `officer` (the officer whose token is `tokens["officer"]`), who then signs
    in and finds it on their list."""
    return {"reassign": reassign_journey(browser, url, tokens["supervisor"], tenancy, officer),
            "my_cases": my_cases_journey(browser, url, tokens["officer"])}


# -- the protocol's own steps, recorded on the case page and judged at once (issue 27 item 3) ----------------------
def _record(page, kind: str, channel: str | None = None) -> dict:
    """Record an action of `kind` with the case page's form; the page it lands on: the case judged now."""
    form = page.locator("form.casework-form")
    form.get_by_label("Action").select_option(kind)
    if channel:
        form.get_by_label("Channel").select_option(channel)
    with page.expect_navigation() as navigation:
        form.get_by_role("button", name="Record").click()
    now = page.locator("#case-now")
    return {"status": navigation.value.status, "state": now.get_attribute("data-state"),
            "step": now.get_attribute("data-step"), "said": now.inner_text(),
            "actions": page.locator("table.actions tbody td:nth-child(2)").all_inner_texts()}


def protocol_journey(browser, url: str, tokens: dict[str, str], tenancy: str) -> dict:
    """An officer lands on my cases, opens a ready case and records a rent statement sent; a supervisor records a
    notice served. Each time the case page shows at once the state and next step the action implies."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    found: dict = {"landed": (_sign_in(page, url, tokens["officer"]), page.url)}
    page.goto(f"{url}/app/case?tenancy={tenancy}#casework")
    found["before"] = page.locator("#case-now").get_attribute("data-step")
    found["officer_kinds"] = page.locator("form.casework-form select[name=kind] option").all_inner_texts()
    found["statement"] = _record(page, "rent_statement_sent", "letter")
    found["shots"] = [_shot(page, "officer_rent_statement_sent")]
    page.close()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, url, tokens["supervisor"])
    page.goto(f"{url}/app/case?tenancy={tenancy}#casework")
    found["notice"] = _record(page, "notice_served")
    found["shots"].append(_shot(page, "supervisor_notice_served"))
    _axe(page, "case_judged_now", found)
    page.close()
    return found
