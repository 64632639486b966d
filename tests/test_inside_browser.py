"""The studio's Inside tab in a real headless Chromium (Debian's `chromium`, driven by
Playwright): a pasted song, coloured by surprise; a click on a character lists the model's
choices there, what the song shape's rules did to them and what top-k dropped. And the same
panel for a song written in Write with the model's choices: what every step did, rhyme too.

Without a browser these skip, except in CI (env CI set), where a missing browser fails.
STUDIO_SCREENSHOT_DIR=docs keeps screenshots (docs/inside-studio.png, docs/inside-writing.png).
"""

import pytest

from .browser_support import shot, studio_page, until

pytestmark = pytest.mark.slow  # a real browser

SONG = ("# Rain Home\n\nI was born beside the river where the willows bend and sway,\n"
        "My father told me stories at the closing of the day,\n")


def _demo_run(root):
    """A small model trained a few hundred steps on the bundled demo songs (about 10 s): it has
    learned enough spelling for its choices to read as choices, in the test and the screenshot."""
    from songgen import TrainConfig, train
    from songgen.text.corpus import demo_corpus

    config = TrainConfig(seq_len=32, batch_size=8, eval_every=250, device="cpu", patience=0,
                         checkpoint_dir=str(root / "demo"), steps=500, seed=0, threads=1)
    train(demo_corpus(), model={"embed_dim": 16, "hidden_size": 64, "layers": 1,
                                "dropout": 0.0}, config=config, quiet=True)
    return root


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with studio_page(_demo_run(tmp_path_factory.mktemp("runs"))) as page:
        page.click("[data-tab=inside]")
        page.select_option("#model", "demo/best.pt")
        yield page


def _explain(page, text: str, temperature: str = "0.8", top_k: str = "3") -> None:
    """Paste `text`, set the sampling settings on the left, and explain."""
    page.fill("#temperature", temperature)
    page.fill("#top_k", top_k)
    page.fill("#top_p", "1")
    page.fill("#inside-text", text)
    page.click("#explain-btn")
    until(page, "document.querySelectorAll('#inside-out span').length > 0 && "
          "!document.getElementById('explain-btn').disabled")


def _rows(page) -> list[list[str]]:
    """The choices table: one list of cell texts per choice."""
    return page.evaluate("[...document.querySelectorAll('#inside-choices tr')].slice(1)"
                         ".map(tr => [...tr.cells].map(td => td.textContent))")


def test_a_click_on_the_title_mark_shows_the_shape_forcing_it(page):
    _explain(page, SONG)
    spans = page.locator("#inside-out span")
    # Every character of the song (line breaks shown as marks) and the end of the song.
    assert spans.count() == len(SONG.strip("\n")) + 1
    assert page.evaluate("document.querySelector('#inside-out span:last-child').className"
                         ) == "end"
    colours = page.evaluate("[...document.querySelectorAll('#inside-out span')]"
                            ".map(s => s.style.background)")
    assert len(set(colours)) > 3  # coloured by surprise, not one flat colour
    spans.nth(0).click()
    assert page.evaluate("document.querySelector('#inside-out span.sel').dataset.i") == "0"
    heading = page.inner_text("#inside-choices h3")
    assert heading.startswith("#: p = ") and heading.endswith("100.00% as songgen would draw it")
    assert page.inner_text("#inside-choices ul.rules") == "shape: a titled song starts with '#'"
    rows = _rows(page)
    assert len(rows) > 3
    actual = page.evaluate("[...document.querySelector('#inside-choices tr.actual').cells]"
                           ".map(td => td.textContent)")
    assert actual[0] == "#" and actual[2] == actual[3] == "100.00%"
    others = [r for r in rows if r[0] != "#"]
    assert others and all(r[2] == r[3] == "0" and r[4] == "removed by the shape"
                          for r in others)
    assert "top-k 3" in page.inner_text("#inside-choices p.hint")


def test_top_k_drops_the_tail_and_a_new_temperature_redraws(page):
    _explain(page, SONG)
    i = SONG.index("river")  # inside a lyric line: only an end and a '#' are ruled out
    page.locator("#inside-out span").nth(i).click()
    assert page.inner_text("#inside-choices h3").startswith("r: p = ")
    assert page.inner_text("#inside-choices ul.rules").split("\n") == [
        "shape: the song may not end yet (too short, or not at a line's end)",
        "shape: '#' starts a title line only"]
    rows = _rows(page)
    assert all(r[0] in ("[end of song]", "#") for r in rows if r[4] == "removed by the shape")
    live = [r for r in rows if r[3] != "0"]
    assert len(live) == 3
    assert all(r[4] == "dropped by top-k" for r in rows if r[3] == "0" and r[2] != "0")
    assert any(r[4] == "dropped by top-k" for r in rows)
    # Temperature sharpens what is drawn: at 0.3 the likeliest choice gets more than at 0.8.
    first_at_08 = float(live[0][3].rstrip("%"))
    _explain(page, SONG, temperature="0.3")
    page.locator("#inside-out span").nth(i).click()
    live = [r for r in _rows(page) if r[3] != "0"]
    assert float(live[0][3].rstrip("%")) > first_at_08
    _explain(page, SONG)
    page.locator("#inside-out span").nth(i).click()
    shot(page, "inside-studio.png")


def test_an_unknown_character_is_shown_not_read_and_errors_are_one_line(page):
    _explain(page, "# Rain\n\nthe river \u2603 gone\n")
    # A short text still gets the room the choices leave (not a column as wide as its lines).
    assert page.evaluate("document.getElementById('inside-text').getBoundingClientRect().width"
                         ) > 500
    snowman = page.locator("#inside-out span.unknown")
    assert snowman.count() == 1
    snowman.click()
    assert page.inner_text("#inside-choices h3") == '"\u2603": never seen by the model (not read)'
    page.fill("#inside-text", "   ")
    page.click("#explain-btn")
    until(page, "!document.getElementById('inside-error').hidden")
    assert page.inner_text("#inside-error") == "paste a text to explain"
    assert page.problems == [] or all("400" in p for p in page.problems)


def test_a_written_song_opens_in_inside_from_its_card(page):
    page.click("[data-tab=write]")
    page.fill("#num_songs", "1")
    page.fill("#length", "120")
    page.fill("#seed", "3")
    page.click("#write-btn")
    until(page, "document.querySelector('.song .meta') && "
          "document.querySelector('.song .meta').textContent.includes('bits/char')")
    song = page.text_content(".song pre")
    page.locator(".song .inside-btn").first.click()
    assert page.is_visible("#inside-text") and page.input_value("#inside-text") == song
    page.click("#explain-btn")
    until(page, "document.querySelectorAll('#inside-out span').length > 0 && "
          "!document.getElementById('explain-btn').disabled")
    shown = page.evaluate("[...document.querySelectorAll('#inside-out span')]"
                          ".map(s => s.textContent).join('')")
    assert shown.replace("\u21b5", "\n").startswith(song.strip("\n")[:40])


def test_a_character_of_a_song_being_written_opens_the_choices_and_the_steps(page):
    page.click("[data-tab=write]")
    page.fill("#title", "")
    page.fill("#prime", "")
    page.fill("#num_songs", "2")
    page.fill("#length", "500")
    page.fill("#seed", "4")
    page.fill("#temperature", "0.8")
    page.fill("#top_k", "0")
    page.select_option("#rhyme", "AABB")
    assert page.is_checked("#trace")  # on by default
    page.click("#write-btn")
    # While it is written, a character already in the card opens its choices.
    until(page, "document.querySelectorAll('.song pre span').length > 3")
    page.locator(".song pre span").first.click()
    assert not page.is_hidden("#write-choices")
    assert page.inner_text("#write-choices h3").startswith("#: p = ")
    until(page, "[...document.querySelectorAll('.song .meta')].every("
          "m => m.textContent.includes('bits/char'))")
    card = page.locator(".song pre").first
    card.locator("span").first.click()
    heading = page.inner_text("#write-choices h3")
    assert heading.startswith("#: p = ") and heading.endswith("100.00% as songgen drew it")
    rules = page.inner_text("#write-choices ul.rules").split("\n")
    assert "shape: a titled song starts with '#' (forced #)" in rules
    assert "temperature: scores divided by the temperature, 0.8" in rules
    # The card's text is the song, one span per character.
    assert card.text_content() == page.evaluate("songs[0].song.text")
    # A line the rhyme asked for: chosen among candidate lines, and the rhyme step's words.
    i = page.evaluate("(() => { const s = songs[0]; return s.traces.findIndex((t) => t && "
                      "t.line && t.steps.some((e) => e.step === 'rhyme' && "
                      "e.words.some((w) => w.includes('is to rhyme with')))) + s.primeLength; })()")
    assert i >= 0
    card.locator(f"span[data-i='{i}']").click()
    assert "chosen among 3 candidate lines" in page.inner_text("#write-choices p.line")
    assert any(r.startswith("rhyme: ") and "is to rhyme with" in r
               for r in page.inner_text("#write-choices ul.rules").split("\n"))
    header = page.evaluate("[...document.querySelectorAll('#write-choices th')]"
                           ".map(th => th.textContent)")
    assert header == ["choice", "model", "drawn from", "what the steps did"]
    assert page.locator("#write-choices tr.actual").count() == 1
    # For the picture: a letter of a rhyming word the rhyme step drew (the others removed).
    end = page.evaluate("(() => { const s = songs[0]; const k = s.traces.findIndex((t) => t && "
                        "t.steps.some((e) => e.step === 'rhyme' && e.removed.length && "
                        "e.words.some((w) => w.includes('continue a word rhyming')))); "
                        "return k < 0 ? k : k + s.primeLength; })()")
    card.locator(f"span[data-i='{end if end >= 0 else i}']").click()
    page.set_viewport_size({"width": 1360, "height": 1000})
    shot(page, "inside-writing.png")
    page.set_viewport_size({"width": 1360, "height": 820})
    assert page.problems == [] or all("400" in p for p in page.problems)
