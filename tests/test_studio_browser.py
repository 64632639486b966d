"""songgen studio in a real headless Chromium (Debian's `chromium`, driven by Playwright).

Without a browser these skip, except in CI (env CI set), where a missing browser fails.
"""

import time

import pytest

from .browser_support import shot, studio_page, until
from .studio_support import make_runs, metrics_line, studio

pytestmark = pytest.mark.slow  # a real browser


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with studio_page(make_runs(tmp_path_factory.mktemp("runs"))) as page:
        yield page


def test_write_shows_songs_growing_as_they_are_written(page):
    page.select_option("#model", "runA/endless.pt")
    page.fill("#num_songs", "3")
    page.fill("#length", "4000")
    page.fill("#title", "Golden River")
    page.click("#write-btn")
    first = page.locator(".song pre").first
    until(page, "document.querySelector('.song pre') && "
          "document.querySelector('.song pre').textContent.length > 40")
    before = len(first.text_content())
    until(page, f"document.querySelector('.song pre').textContent.length > {before + 40}")
    assert page.locator(".song").count() == 3
    assert not page.is_disabled("#stop-btn")
    page.click("#stop-btn")
    until(page, "!document.getElementById('write-btn').disabled")
    # A whole batch from a model with its corpus: finished songs, a longest copy for each.
    page.select_option("#model", "runA/best.pt")
    page.fill("#length", "500")
    page.fill("#seed", "11")
    page.fill("#max_lines", "8")
    page.click("#write-btn")
    until(page, "document.querySelectorAll('.song .meta').length === 3 && "
          "[...document.querySelectorAll('.song .meta')].every("
          "m => m.textContent.includes('bits/char'))")
    assert "Golden River" in page.locator(".song pre").first.text_content()
    assert "longest copy" in page.locator(".song .meta").first.text_content()
    assert not page.is_disabled("#dl-txt")
    shot(page, "studio-write.png")


def test_next_line_ideas_click_into_the_text(page):
    page.click("[data-tab=cowrite]")
    page.select_option("#model", "runA/best.pt")
    page.fill("#seed", "")
    page.fill("#draft", "# Home Again\n\nlove the river\n")
    page.fill("#num_ideas", "3")
    page.click("#ideas-btn")
    until(page, "document.querySelectorAll('.idea').length === 3 && "
          "[...document.querySelectorAll('.idea')].every(b => !b.disabled)")
    idea = page.evaluate("document.querySelector('.idea').textContent")
    page.locator(".idea").first.click()
    draft = page.input_value("#draft")
    added = draft[len("# Home Again\n\nlove the river\n"):]
    assert draft.startswith("# Home Again\n\nlove the river\n") and added.strip()
    assert added.replace("\n", "").strip() in idea.replace("↵", "").replace("\n", "")
    # A character the model never saw is flagged under the text, not sent.
    page.fill("#draft", draft + "caf\u00e9 \u2603")
    assert page.is_visible("#unknown")
    assert "\u00e9" in page.text_content("#unknown") and page.is_disabled("#continue-btn")
    page.fill("#draft", draft)
    assert page.is_hidden("#unknown") and not page.is_disabled("#continue-btn")
    page.click("#continue-btn")
    until(page, "!document.getElementById('continue-btn').disabled")
    assert len(page.input_value("#draft")) > len(draft)
    shot(page, "studio-cowrite.png")


def test_training_curves_redraw_when_metrics_grow(page):
    run = page.root / "live"
    run.mkdir()
    with open(run / "metrics.jsonl", "w") as f:
        for step in range(1, 5):
            f.write(metrics_line(step * 100, 2.6 - 0.2 * step ** 0.5, step * 12.0))
    page.click("[data-tab=training]")
    page.locator(".run", has_text="live").locator("input").check()
    until(page, "+(document.getElementById('chart').dataset.points || 0) >= 4")
    before = int(page.get_attribute("#chart", "data-points"))
    with open(run / "metrics.jsonl", "a") as f:
        f.write(metrics_line(500, 2.1, 60.0) + metrics_line(600, 2.05, 72.0)[:20])
    until(page, f"+document.getElementById('chart').dataset.points === {before + 1}",
          timeout=10_000)
    assert page.locator("#chart polyline").count() >= 2
    page.select_option("#x-axis", "elapsed")
    assert "elapsed training time" in page.text_content("#chart")
    assert "live" in page.text_content("#run-details")
    time.sleep(0.2)
    shot(page, "studio-training.png")


def test_the_menu_offers_what_sample_uses_each_file_with_its_own_score(page):
    """`songgen sample --checkpoint runA` uses runA/best.pt: so does the page, though
    runA/endless.pt is newer; each file shows the score of its own step."""
    from songgen.run import checkpoint as ckpt

    page.reload()
    until(page, "document.getElementById('status').textContent === 'ready'")
    assert page.input_value("#model") == "runA/best.pt"
    labels = {o.get_attribute("value"): o.text_content()
              for o in page.locator("#model option").all()}
    for name, label in labels.items():
        saved = ckpt.load(page.root / name)
        own = next((h["val_loss"] for h in saved.history if h["step"] == saved.step), None)
        assert label.startswith(f"{name} (step {saved.step}, ")
        assert (f"{own / 0.6931471805599453:.3f} bits/char" if own is not None else
                "not evaluated at this step") in label, label
    assert "bits/char" in page.text_content("#model-info")


def test_the_co_write_hint_names_the_button_on_write_s_cards(page):
    page.click("[data-tab=write]")
    page.select_option("#model", "runA/best.pt")
    page.fill("#num_songs", "1")
    page.fill("#length", "60")
    page.click("#write-btn")
    until(page, "document.querySelector('.song .meta') && "
          "document.querySelector('.song .meta').textContent.includes('bits/char')")
    button = page.locator(".song .keep").first.text_content()
    hint = page.get_attribute("#draft", "placeholder")
    assert f"the {button} button on its card in Write" in hint and "Keep" not in hint
    page.click("[data-tab=cowrite]")
    page.fill("#draft", "")
    shot(page, "studio-cowrite-hint.png")
    page.click("[data-tab=write]")
    page.locator(".song .keep").first.click()
    assert page.is_visible("#draft") and page.input_value("#draft").strip()


def test_no_page_error_and_nothing_refused_by_the_content_policy(page):
    assert page.problems == []


def test_beyond_loopback_the_token_address_opens_the_page_and_then_leaves_the_bar(page):
    with studio(page.root, host="0.0.0.0") as server:
        other = page.context.browser.new_page()
        try:
            port = server.server_address[1]
            other.goto(f"http://127.0.0.1:{port}/")
            # (said by the page's script once its first request is refused)
            until(other, "document.body.textContent.includes('asks for its token')")
            other.goto(server.url)
            until(other, "document.getElementById('status').textContent === 'ready'")
            assert other.url == f"http://127.0.0.1:{port}/"  # the token left the address bar
            assert other.input_value("#model") == "runA/best.pt"
            other.fill("#length", "60")
            other.fill("#num_songs", "1")
            other.click("#write-btn")  # a POST with the token and its own Origin
            until(other, "document.querySelector('.song .meta') && document."
                  "querySelector('.song .meta').textContent.includes('bits')")
            shot(other, "studio-token.png")
        finally:
            other.close()
