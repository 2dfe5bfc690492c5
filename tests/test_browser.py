"""The built book in a real browser (Chromium), opened from disk with the network cut off.

Every page of ``_build/html`` is opened as a ``file://`` URL; DNS resolves nothing, every request goes to a
proxy that does not exist and the DevTools protocol puts the page offline, while the performance log records
every request the page attempted. Per page: no JavaScript console error, every image loaded, every math
element rendered by MathJax (served from the book's own ``_static``) and no raw ``\\(`` left in the text,
every interactive figure (:func:`mlsec_kit.interactive.frame_slider`) shows something else after its slider
is moved with the keyboard, every notebook page has a Colab launch link into the configured repository, and
no request left the machine. A screenshot of each whole page (JPEG: PNG encoding of the 1280 x 11 857-pixel
chapter pages took 40 core-seconds of the test command) and of each slider before and after its move (PNG) is
saved under ``_build/screenshots/`` for review.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and selenium.
"""
from __future__ import annotations

import base64
import json
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "_build" / "screenshots"
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "chrome-extension:", "devtools:")

pytestmark = pytest.mark.book


def _executables():
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                     if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    return chromium, driver


def _driver():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -r requirements.txt): browser test skipped")
    chromium, driver = _executables()
    if not (chromium and driver):
        pytest.skip("Chromium and chromedriver are not installed (Debian: apt-get install chromium "
                    "chromium-driver; .ci/run does this): browser test skipped")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--hide-scrollbars",
                # the network, cut off three ways: no name resolves, every request goes to a dead proxy,
                # and (below) DevTools puts the page offline; attempts are still recorded
                "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
                "--proxy-bypass-list=<-loopback>", "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-features=OptimizationHints,MediaRouter,Translate"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    drv = webdriver.Chrome(service=Service(driver), options=opts)
    drv.execute_cdp_cmd("Network.enable", {})
    drv.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    return drv


def _requests(drv):
    """URLs the page asked for since the last call, from the performance log."""
    urls = []
    for entry in drv.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
        elif msg.get("method") == "Network.webSocketCreated":
            urls.append(msg["params"]["url"])
    return urls


_SETTLE = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
imgs.forEach(i => { if (i.loading === 'lazy') i.loading = 'eager'; });
const loaded = Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
  i.addEventListener('load', r); i.addEventListener('error', r); })));
const math = (window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve();
Promise.all([loaded, math]).then(() => done(true), e => done(String(e)));
"""

_INSPECT = r"""
const skip = n => n.closest('pre, code, script, style, textarea, mjx-container, .highlight');
const raw = [];
const walker = document.createTreeWalker(document.body || document.documentElement, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const t = walker.currentNode;
  if (/\\\(|\\\[|\$\$/.test(t.textContent) && !skip(t.parentElement)) raw.push(t.textContent.slice(0, 80));
}
const math = Array.from(document.querySelectorAll('.math'));
return {
  brokenImages: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 120)),
  images: document.images.length,
  math: math.length,
  unrendered: math.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 80)),
  mathjax: Array.from(document.scripts).map(s => s.src).filter(s => /mathjax/i.test(s)),
  raw: raw,
  colab: Array.from(document.querySelectorAll('a[href*="colab.research.google.com"]')).map(a => a.href),
  sliders: document.querySelectorAll('.mk-frame-slider').length,
  height: Math.min(document.documentElement.scrollHeight, 12000),
};
"""


def _pages(html: Path):
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts)


@pytest.fixture(scope="module")
def browsed(book_html):
    """Every built page opened in Chromium with the network off: what each showed and asked for."""
    drv = _driver()
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in (*SHOTS.rglob("*.png"), *SHOTS.rglob("*.jpg")):
        old.unlink()
    from selenium.webdriver.common.keys import Keys

    report = {}
    try:
        drv.set_script_timeout(60)
        _requests(drv)
        drv.get_log("browser")
        for page in _pages(book_html):
            rel = page.relative_to(book_html).with_suffix("").as_posix()
            drv.get(page.as_uri())
            try:
                settled = drv.execute_async_script(_SETTLE)
                info = drv.execute_script(_INSPECT)
            except Exception as exc:  # say which page
                raise AssertionError(f"{rel}: {str(exc)[:500]}") from exc
            info["settled"] = settled
            shot = SHOTS / f"{rel}.jpg"
            shot.parent.mkdir(parents=True, exist_ok=True)
            drv.set_window_size(1280, max(800, info["height"]))
            jpeg = drv.execute_cdp_cmd("Page.captureScreenshot", {"format": "jpeg", "quality": 80})["data"]
            shot.write_bytes(base64.b64decode(jpeg))
            drv.set_window_size(1280, 1000)
            moved = []
            for k, el in enumerate(drv.find_elements("css selector", ".mk-frame-slider")):
                drv.execute_script("arguments[0].scrollIntoView({block: 'start'})", el)
                slider = el.find_element("css selector", "input[type=range]")
                value = slider.get_attribute("value")
                before = el.screenshot_as_png
                # a reader's move: focus the control and press End (or Home when it starts at the end)
                slider.click()
                slider.send_keys(Keys.HOME if value == slider.get_attribute("max") else Keys.END)
                time.sleep(0.2)
                after = el.screenshot_as_png
                (SHOTS / f"{rel}-slider{k}-before.png").write_bytes(before)
                (SHOTS / f"{rel}-slider{k}-after.png").write_bytes(after)
                moved.append({"from": value, "to": slider.get_attribute("value"),
                              "changed": before != after})
            info["moved"] = moved
            info["console"] = [e["message"] for e in drv.get_log("browser") if e["level"] == "SEVERE"]
            info["network"] = [u for u in _requests(drv) if not u.startswith(LOCAL_SCHEMES)]
            report[rel] = info
    finally:
        drv.quit()
    (SHOTS / "report.json").write_text(json.dumps(report, indent=1))
    return report


def test_every_page_was_opened(browsed, book_html):
    assert len(browsed) == len(_pages(book_html)) and "index" in browsed
    assert all(info["settled"] is True for info in browsed.values()), \
        {p: i["settled"] for p, i in browsed.items() if i["settled"] is not True}
    assert all((SHOTS / f"{p}.jpg").read_bytes()[:3] == b"\xff\xd8\xff" for p in browsed)   # JPEG files
    assert all((SHOTS / f"{p}.jpg").stat().st_size > 5000 for p in browsed)


def test_no_request_leaves_the_machine(browsed):
    leaks = {p: i["network"] for p, i in browsed.items() if i["network"]}
    assert not leaks, f"pages asked the network for: {leaks}"


def test_no_javascript_errors(browsed):
    errors = {p: i["console"] for p, i in browsed.items() if i["console"]}
    assert not errors, errors


def test_every_image_loads(browsed):
    broken = {p: i["brokenImages"] for p, i in browsed.items() if i["brokenImages"]}
    assert not broken, broken
    chapters = [p for p in browsed if p.startswith("chapters/")]
    assert chapters and all(browsed[p]["images"] > 0 for p in chapters)


def test_math_renders_offline(browsed):
    with_math = [p for p, i in browsed.items() if i["math"]]
    assert with_math, "no page has math: the check would pass vacuously"
    for p in with_math:
        info = browsed[p]
        assert info["mathjax"] and all(s.startswith("file:") and "/_static/mathjax/" in s
                                       for s in info["mathjax"]), (p, info["mathjax"])
        assert not info["unrendered"], (p, info["unrendered"][:5])
    raw = {p: i["raw"][:3] for p, i in browsed.items() if i["raw"]}
    assert not raw, f"raw LaTeX left in the text: {raw}"


def test_interactive_figures_respond_to_their_control(browsed):
    sliders = {p: i["moved"] for p, i in browsed.items() if i["sliders"]}
    for p, moves in sliders.items():
        assert len(moves) == browsed[p]["sliders"]
        for m in moves:
            assert m["to"] != m["from"], (p, m)
            assert m["changed"], f"{p}: moving the slider from {m['from']} to {m['to']} changed nothing"


def test_notebook_pages_open_in_colab_from_the_configured_repository(browsed):
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    slug, branch = repo["url"].removeprefix("https://github.com/"), repo.get("branch", "main")
    notebooks = [p for p in browsed if (ROOT / f"{p}.ipynb").is_file()]
    assert notebooks
    for p in notebooks:
        base = f"https://colab.research.google.com/github/{slug}/blob/{branch}/"
        wanted = {f"{base}{p}.ipynb", f"{base}colab/{p}.ipynb"}
        assert wanted & set(browsed[p]["colab"]), (p, browsed[p]["colab"])


def test_the_network_is_really_off():
    """The browser settings above do cut the network: a page that asks for a remote script records the
    attempt and does not get it (so the checks above cannot pass because requests silently succeeded)."""
    drv = _driver()
    try:
        probe = SHOTS.parent / "probe.html"
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_text('<html><body><script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-svg.js">'
                         '</script><p id="p">x</p></body></html>')
        _requests(drv)
        drv.get(probe.as_uri())
        time.sleep(1)
        assert drv.execute_script("return typeof window.MathJax") == "undefined"
        assert any(re.match(r"https://cdn\.jsdelivr\.net/", u) for u in _requests(drv))
    finally:
        drv.quit()


def test_chapters_that_make_interactive_figures_show_them(browsed):
    """A notebook that calls frame_slider must show a working slider on its page (not a dead text repr)."""
    for p in browsed:
        src = ROOT / f"{p}.ipynb"
        if src.is_file() and "frame_slider(" in src.read_text():
            assert browsed[p]["sliders"] >= 1, f"{p} calls frame_slider but its page shows no slider"


def test_frame_slider_changes_its_figure_in_the_browser(tmp_path):
    """frame_slider's own HTML, in a page of its own: moving the control with the keyboard swaps the frame,
    and a screenshot after the move differs from the one before (saved for review)."""
    import matplotlib.pyplot as plt

    from mlsec_kit.interactive import frame_slider

    frames = {}
    for eps in (0.0, 0.1, 0.3):
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.bar(["clean", "attacked"], [95, 95 - 280 * eps])
        ax.set_title(f"eps = {eps}")
        frames[f"{eps}"] = fig
    page = tmp_path / "slider.html"
    page.write_text(f"<html><body>{frame_slider(frames, label='eps')._repr_html_()}</body></html>")
    drv = _driver()
    from selenium.webdriver.common.keys import Keys
    try:
        _requests(drv)
        drv.get(page.as_uri())
        el = drv.find_element("css selector", ".mk-frame-slider")
        slider = el.find_element("css selector", "input[type=range]")
        shown = "return Array.from(arguments[0].querySelectorAll('.mk-frame')).map(f => f.style.display)"
        assert drv.execute_script(shown, el) == ["block", "none", "none"]
        before = el.screenshot_as_png
        slider.click()
        slider.send_keys(Keys.END)
        time.sleep(0.2)
        after = el.screenshot_as_png
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / "frame_slider-before.png").write_bytes(before)
        (SHOTS / "frame_slider-after.png").write_bytes(after)
        assert drv.execute_script(shown, el) == ["none", "none", "block"]
        assert el.find_element("css selector", "output").text == "0.3"
        assert before != after
        assert not [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]
        assert not [u for u in _requests(drv) if not u.startswith(LOCAL_SCHEMES)]
    finally:
        drv.quit()
