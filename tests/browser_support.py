"""Shared by the browser tests (the studio page, its Inside tab, the explain page): a headless
Chromium (Debian's `chromium`, driven by Playwright) launched alike for each, skipped where
there is none (failed instead in CI), waiting for the page, and screenshots for the docs
(STUDIO_SCREENSHOT_DIR)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

import pytest

from .studio_support import studio

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = Path(os.environ.get("STUDIO_SCREENSHOT_DIR", "")) if os.environ.get(
    "STUDIO_SCREENSHOT_DIR") else None


def browser_or_skip():
    """Playwright's sync_playwright; the test is skipped (failed in CI) where it or the
    browser is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = ("Playwright for Python is not installed (pip install -e '.[test]')"
               if sync_playwright is None else None if CHROMIUM else
               "no chromium on PATH (apt-get install chromium)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need a browser in CI: {missing}")
        pytest.skip(missing)
    return sync_playwright


def launch(playwright):
    """A headless Chromium that reaches for nothing of its own (updates, sync, first run)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"])


def watch_problems(page) -> None:
    """Gather in `page.problems` what the browser refused or failed at (a page error, a CSP
    block)."""
    page.problems = []
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(str(e)))


@contextlib.contextmanager
def studio_page(root):
    """The studio serving `root`, open in a headless Chromium and ready; `page.problems` gathers
    what the browser refused or failed at (a page error, a CSP block)."""
    sync_playwright = browser_or_skip()
    with studio(root) as server, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1360, "height": 820})
        page.root = root
        watch_problems(page)
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        until(page, "document.getElementById('status').textContent === 'ready'")
        yield page
        browser.close()


def until(page, expression: str, timeout: float = 30_000) -> None:
    """Wait until a JavaScript expression is true. (Playwright's wait_for_function evaluates its
    text with eval, which the studio's Content-Security-Policy rightly refuses.)"""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout / 1000:g} s: {expression}")
        time.sleep(0.02)


def shot(page, name):
    """A screenshot of the page for the docs, where STUDIO_SCREENSHOT_DIR names a folder."""
    if SCREENSHOT is not None:
        SCREENSHOT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT / name))
