"""The page of `songgen explain -o` in a real headless Chromium (Debian's `chromium`, driven
by Playwright), opened from its file with the network cut off: it must need nothing else.

Without a browser these skip, except in CI (env CI set), where a missing browser fails.
STUDIO_SCREENSHOT_DIR=docs keeps a screenshot (docs/explain.png).
"""

import json

import pytest

from .explain_support import invoke, run  # noqa: F401 (run: the module's trained run)
from .browser_support import browser_or_skip, launch, shot, until, watch_problems

pytestmark = pytest.mark.slow  # a real browser


@pytest.fixture(scope="module")
def page(run, tmp_path_factory):  # noqa: F811
    sync_playwright = browser_or_skip()
    html = tmp_path_factory.mktemp("page") / "page.html"
    result = invoke("explain", run / "other.txt", "--checkpoint", run / "ck", "-o", html,
                    "--json", "--top", 20)
    assert result.exit_code == 0, result.output
    with sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(viewport={"width": 1360, "height": 820})
        context.route("**/*", lambda route: route.abort() if not route.request.url.startswith(
            "file:") else route.continue_())  # no network: a fetch would fail and show
        page = context.new_page()
        page.records = [json.loads(line) for line in result.stdout.splitlines()]
        watch_problems(page)
        page.on("requestfailed", lambda r: page.problems.append(f"request {r.url}"))
        page.goto(html.as_uri())
        until(page, "document.querySelectorAll('#text span').length > 1000")
        yield page
        browser.close()


def test_pointing_at_a_character_shows_the_choices_at_two_temperatures(page):
    spans = page.locator("#text span")
    assert spans.count() == len(page.records)
    i = 30
    spans.nth(i).hover()
    until(page, "document.querySelector('#panel table') !== null")
    record = page.records[i]
    shown = page.inner_text("#panel .prob")  # "p = 0.1234 at temperature 1 (...)"
    assert float(shown.split()[2]) == pytest.approx(record["p"], rel=1e-3)
    rows = page.locator("#panel table tr")
    assert rows.count() == 1 + 20 + 1  # header, the kept choices, the rest
    first = rows.nth(1).locator("td")
    assert first.nth(1).inner_text() == f"{100 * record['top'][0][1]:.2f}%"
    before = first.nth(2).inner_text()
    page.fill("#temp", "0.3")
    page.dispatch_event("#temp", "input")
    after = page.locator("#panel table tr").nth(1).locator("td").nth(2).inner_text()
    # A lower temperature sharpens: the likeliest choice gets more.
    assert float(after.rstrip("%")) > float(before.rstrip("%"))
    assert page.problems == []


def test_surprise_colours_and_a_suggested_cell(page):
    colours = page.evaluate("[...document.querySelectorAll('#text span')].slice(0, 50)"
                            ".map(s => s.style.background)")
    assert len(set(colours)) > 5
    shot(page, "explain.png")
    page.check("input[value=cell]")
    assert page.is_visible("#cell")
    groups = page.evaluate("[...document.querySelectorAll('#cell optgroup')].map(g => g.label)")
    assert any("inside of a title" in g for g in groups)
    assert any("not in this text" in g for g in groups)  # no quotes in the text
    recoloured = page.evaluate("[...document.querySelectorAll('#text span')].slice(0, 50)"
                               ".map(s => s.style.background)")
    assert recoloured != colours and all(c.startswith("rgba") for c in recoloured)
    assert "tanh of its cell state" in page.inner_text("#legend")
    assert page.problems == []
