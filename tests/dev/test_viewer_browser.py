"""The dev viewer in a real browser: runs a real tcc agent exported over OTLP, as a user sees them.

The dev command runs as a subprocess (`python -m contextcompany dev --port 0 --db FILE`); an agent
subprocess records runs with the public API and exports them to it over loopback; Playwright drives
the system's Chromium (Playwright's own browser download cannot run here). One browser per module.
The tests also take the screenshots in docs/ (refreshed there with TCC_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from genai_prices import Usage, calc_price

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"

# Strings a page that put data into HTML would run; the viewer must show them as text.
SCRIPT_PAYLOAD = "<script>window.__pwned = 'script'</script>"
IMG_PAYLOAD = "<img src=x onerror=\"window.__pwned = 'img'\">"

# The agent: one run with a tool call, a step that raises, and hostile text in every kind of field;
# a second run that fails, on another model, agent and session.
AGENT = textwrap.dedent(
    f"""
    import contextcompany as tcc

    SCRIPT = {SCRIPT_PAYLOAD!r}
    IMG = {IMG_PAYLOAD!r}

    class ForecastUnavailableError(Exception):
        pass

    run = tcc.run(run_id="browser-run-1", session_id="sess-browser", name="weather_agent")
    run.prompt("What is the weather in Paris? " + SCRIPT, system_prompt="You answer weather questions.")
    run.metadata(team="qa", note=IMG)

    plan = run.step()
    plan.prompt("Plan the call for Paris " + IMG).model(requested="gpt-4o", used="gpt-4o-2024-08-06")
    plan.tool_definitions([{{"type": "function", "function": {{"name": "get_weather"}}}}])
    plan.response("Calling get_weather for Paris " + SCRIPT)
    plan.tokens(prompt_uncached=900, prompt_cached=1024, completion=40).finish_reason("tool_calls")
    call = plan.tool_call("get_weather", tool_call_id="call_abc123")
    call.args({{"city": "Paris", "units": "metric", "note": SCRIPT}})
    call.result({{"temp_c": 21, "sky": "sunny"}}).end()
    plan.end()

    broken = run.step()
    broken.prompt("Second opinion on Paris").model(requested="claude-sonnet-4-5")
    try:
        with broken:
            raise ForecastUnavailableError("forecast service answered 503 " + IMG)
    except ForecastUnavailableError:
        pass

    final = run.step()
    final.prompt("Write the answer for Paris").model(requested="gpt-4o-mini", used="gpt-4o-mini-2024-07-18")
    final.response("It is 21 C and sunny in Paris.").tokens(prompt_uncached=1200, completion=25)
    final.finish_reason("stop").end()
    run.response("It is 21 C and sunny in Paris.").end()
    run.feedback(score="thumbs_up", text="Right city, right weather.")

    other = tcc.run(run_id="browser-run-2", session_id="sess-other", name="billing_agent")
    other.prompt("Refund order 1234")
    s = other.step()
    s.prompt("Look up order 1234").model(requested="gpt-4.1-nano").response("Order 1234 not found")
    s.tokens(prompt_uncached=300, completion=12).end()
    other.error("OrderLookupFailed: order 1234 does not exist")
    tcc.flush()
    """
)


@dataclass
class DevServer:
    process: subprocess.Popen[str]
    url: str

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=20)
        assert self.process.returncode == 0, err
        return err


def start_dev(db: pathlib.Path) -> DevServer:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "contextcompany", "dev", "--port", "0", "--db", str(db), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )
    assert process.stderr is not None
    banner = process.stderr.readline()
    match = re.search(r"viewer at (http://127\.0\.0\.1:\d+)/", banner)
    if not match:
        process.kill()
        pytest.fail(f"no viewer URL in the dev command's first line: {banner!r}")
    return DevServer(process, match.group(1))


def run_agent(url: str, code: str = AGENT, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TCC_"))}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = url
    result = subprocess.run(
        [sys.executable, *(args or ("-c", code))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("viewer") / "dev.db"


@pytest.fixture(scope="module")
def server(db: pathlib.Path) -> Iterator[DevServer]:
    dev = start_dev(db)
    yield dev
    if dev.process.poll() is None:
        dev.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], errors  # no script error on any page


def not_pwned(page: Page) -> None:
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("main img").count() == 0


# The tests of this module share one server and build on each other, in order.


def test_exported_run_appears_in_the_list_within_2_s(server: DevServer, page: Page) -> None:
    page.goto(server.url + "/")
    expect(page.locator(".empty")).to_contain_text("No runs yet")
    run_agent(server.url)
    sent = time.monotonic()
    row = page.locator("tr.run", has_text="weather_agent")
    expect(row).to_be_visible(timeout=2_000)  # polled in, no reload
    assert time.monotonic() - sent < 2.0
    expect(page.locator("tr.run")).to_have_count(2)

    # The cost is what genai-prices gives for the two priced steps, shown as the terminal shows it.
    expected = sum(
        calc_price(usage, model_ref=model, provider_id="openai").total_price
        for usage, model in (
            (Usage(input_tokens=1924, cache_read_tokens=1024, output_tokens=40), "gpt-4o-2024-08-06"),
            (Usage(input_tokens=1200, output_tokens=25), "gpt-4o-mini-2024-07-18"),
        )
    )
    expect(row.locator("td.cost")).to_have_text(f"${float(expected):.6f}")
    expect(row.locator("td.models")).to_contain_text("gpt-4o-2024-08-06")
    expect(row.locator("td.models")).to_contain_text("gpt-4o-mini-2024-07-18")
    cells = row.locator("td")
    # steps (the failed one has no price), LLM calls, tools, tokens in, cached, cache write, out
    for index, text in enumerate(["3 (2 priced)", "2", "1", "3,124", "1,024", "0", "65"], start=4):
        expect(cells.nth(index)).to_have_text(text)
    expect(row).to_contain_text("sess-browser")
    not_pwned(page)


def test_run_page_shows_every_step_tool_call_and_error(server: DevServer, page: Page) -> None:
    page.goto(server.url + "/")
    page.locator("tr.run", has_text="weather_agent").locator("td.start a").click()
    expect(page).to_have_url(re.compile(r"/runs/browser-run-1$"))
    cards = page.locator("section.card")
    expect(cards.first).to_be_visible()

    plan = cards.filter(has_text="gpt-4o-2024-08-06")
    expect(plan).to_contain_text("Plan the call for Paris " + IMG_PAYLOAD)
    expect(plan).to_contain_text("Calling get_weather for Paris " + SCRIPT_PAYLOAD)
    expect(plan).to_contain_text("tool_calls")
    expect(plan).to_contain_text("1,924 in · 1,024 cached · 40 out")
    plan.locator("summary", has_text="Tool definitions").click()
    expect(plan).to_contain_text('"name": "get_weather"')

    tool = cards.filter(has=page.locator(".kind.k-tool"))
    expect(tool).to_contain_text('"city": "Paris"')
    expect(tool).to_contain_text('"units": "metric"')
    expect(tool).to_contain_text('"temp_c": 21')

    broken = cards.filter(has_text="claude-sonnet-4-5")
    expect(broken.locator(".error-type")).to_contain_text("ForecastUnavailableError")
    expect(broken.locator(".error-message")).to_contain_text("forecast service answered 503 " + IMG_PAYLOAD)
    expect(broken).to_contain_text("Second opinion on Paris")

    final = cards.filter(has_text="gpt-4o-mini-2024-07-18")
    expect(final).to_contain_text("Write the answer for Paris")
    expect(final).to_contain_text("It is 21 C and sunny in Paris.")
    expect(final).to_contain_text("stop")

    head = page.locator(".run-head")
    expect(head).to_contain_text("weather_agent")
    expect(head).to_contain_text("3 steps, 2 priced")
    expect(head).to_contain_text("sess-browser")
    expect(head).to_contain_text(IMG_PAYLOAD)  # metadata
    expect(page.locator(".exchange")).to_contain_text("What is the weather in Paris? " + SCRIPT_PAYLOAD)
    expect(page.locator(".exchange")).to_contain_text("You answer weather questions.")
    expect(page.locator(".waterfall .wf-row")).to_have_count(6)  # run, 3 steps, tool, feedback
    expect(cards.filter(has_text="Right city, right weather.")).to_have_count(1)
    not_pwned(page)


def test_filters_and_search(server: DevServer, page: Page) -> None:
    page.goto(server.url + "/")
    rows = page.locator("tr.run")
    expect(rows).to_have_count(2)

    page.select_option("select[name=status]", "error")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("billing_agent")
    expect(rows.first).to_contain_text("OrderLookupFailed")
    page.select_option("select[name=status]", "")

    page.select_option("select[name=agent]", "weather_agent")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("weather_agent")
    page.select_option("select[name=agent]", "")

    page.select_option("select[name=model]", "gpt-4.1-nano")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("billing_agent")
    page.select_option("select[name=model]", "")

    page.select_option("select[name=session]", "sess-browser")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("weather_agent")
    page.select_option("select[name=session]", "")
    expect(rows).to_have_count(2)

    search = page.locator("input[name=q]")
    search.fill("sunny in paris")  # a response, any case
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("weather_agent")
    search.fill("order 1234")  # a step's prompt
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("billing_agent")
    search.fill("window.__pwned")  # hostile text is searchable like any other
    expect(rows).to_have_count(1)
    search.fill("no run says this")
    expect(page.locator(".empty")).to_contain_text("No run matches")
    assert "q=no+run+says+this" in page.url  # filters live in the URL: a reload keeps them
    page.reload()
    expect(page.locator(".empty")).to_contain_text("No run matches")
    page.locator("button.clear").click()
    expect(rows).to_have_count(2)
    not_pwned(page)


def test_a_slow_answer_to_an_older_filter_never_replaces_the_newer_one(server: DevServer, page: Page) -> None:
    """The model filter's answer is held back until after the session filter's has been drawn: the list
    keeps showing what the filters on screen select, not the late answer."""
    page.goto(server.url + "/")
    rows = page.locator("tr.run")
    expect(rows).to_have_count(2)
    held: list[Route] = []
    page.route(re.compile(r".*/api/runs\?.*model=gpt-4\.1-nano.*"), lambda route: held.append(route))
    page.select_option("select[name=model]", "gpt-4.1-nano")  # billing_agent only; its answer is held
    page.wait_for_timeout(100)
    assert len(held) == 1, "the model filter asked for its runs"
    page.select_option("select[name=model]", "")
    page.select_option("select[name=session]", "sess-browser")  # weather_agent only
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("weather_agent")
    held[0].continue_()  # the older answer arrives last
    page.wait_for_timeout(500)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("weather_agent")


def test_session_page(server: DevServer, page: Page) -> None:
    page.goto(server.url + "/runs/browser-run-1")
    page.locator(".run-head a", has_text="sess-browser").click()
    expect(page).to_have_url(re.compile(r"/sessions/sess-browser$"))
    expect(page.locator("tr.run")).to_have_count(1)
    expect(page.locator(".run-head")).to_contain_text("sess-browser")
    expect(page.locator(".stats")).to_contain_text("3,124")  # session tokens in
    not_pwned(page)


def test_screenshots_for_the_docs(
    server: DevServer, page: Page, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shipped demo adds two more runs, so the list looks like a working session.
    run_agent(server.url, "", "-m", "contextcompany.dev.demo")
    page.goto(server.url + "/")
    expect(page.locator("tr.run")).to_have_count(4)
    # docs/ is refreshed on request only (TCC_UPDATE_SCREENSHOTS=1), so a test run leaves the tree clean.
    if os.environ.get("TCC_UPDATE_SCREENSHOTS") != "1":
        monkeypatch.setattr(sys.modules[__name__], "DOCS", tmp_path)
    page.set_viewport_size({"width": 1440, "height": 420})
    page.screenshot(path=str(DOCS / "viewer-runs.png"))
    page.locator("tr.run", has_text="trip_planner").first.locator("td.start a").click()
    expect(page.locator("section.card").first).to_be_visible()
    page.set_viewport_size({"width": 1440, "height": 1100})
    page.screenshot(path=str(DOCS / "viewer-run.png"))
    assert (DOCS / "viewer-runs.png").stat().st_size > 10_000
    assert (DOCS / "viewer-run.png").stat().st_size > 10_000


def test_a_restart_with_the_same_db_still_lists_the_runs(
    server: DevServer, db: pathlib.Path, page: Page
) -> None:
    err = server.stop()
    assert "runs kept in " + str(db) in err
    again = start_dev(db)
    try:
        page.goto(again.url + "/")
        expect(page.locator("tr.run", has_text="weather_agent")).to_be_visible()
        expect(page.locator("tr.run")).to_have_count(4)
        page.goto(again.url + "/runs/browser-run-1")
        expect(page.locator("section.card").filter(has_text="ForecastUnavailableError")).to_have_count(1)
        not_pwned(page)
    finally:
        again.stop()
