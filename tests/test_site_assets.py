"""book/_ext/local_assets.py: MathJax comes from the npm package pinned in package.json, served from _static."""
import json
import sys
from pathlib import Path

import pytest
import yaml
from sphinx.errors import ExtensionError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import local_assets  # noqa: E402


def test_config_serves_mathjax_from_static_and_no_widget_cdn():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx = config["sphinx"]
    assert sphinx["local_extensions"] == {"local_assets": "book/_ext", "memo_pybtex": "book/_ext"}
    assert sphinx["config"]["mathjax_path"] == f"mathjax/{local_assets.COMPONENT}"
    assert sphinx["config"]["nb_ipywidgets_js"] == {}
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["mathjax"]
    assert pinned[0].isdigit(), "pin an exact MathJax version"
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/mathjax"]["version"] == pinned


def test_a_missing_mathjax_without_npm_stops_the_build_saying_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(local_assets.shutil, "which", lambda name: None)
    with pytest.raises(ExtensionError, match="npm ci"):
        local_assets.mathjax_dir(tmp_path)


def test_an_installed_mathjax_is_found(tmp_path):
    es5 = tmp_path / "node_modules" / "mathjax" / "es5"
    es5.mkdir(parents=True)
    (es5 / local_assets.COMPONENT).write_text("// MathJax")
    assert local_assets.mathjax_dir(tmp_path) == es5


def test_a_wrong_mathjax_path_is_refused():
    class Config:
        mathjax_path = "https://cdn.example/mathjax.js"
    with pytest.raises(ExtensionError, match="mathjax_path"):
        local_assets._check_config(None, Config())


def test_repeated_inline_scripts_are_dropped_once():
    from sphinx.builders.html._assets import _JavaScript
    scripts = [_JavaScript("a.js"), _JavaScript(None, body="const X = 1"), _JavaScript("", body="const X = 1"),
               _JavaScript("a.js"), _JavaScript(None, body="const Y = 2")]
    context = {"script_files": scripts}
    local_assets._dedupe_scripts(None, "page", "page.html", context, None)
    assert context["script_files"] is scripts and len(scripts) == 3


def test_memo_pybtex_caches_the_lookup_and_finds_the_same_plugins(monkeypatch):
    import pybtex.plugin

    import memo_pybtex

    original = pybtex.plugin.find_plugin
    monkeypatch.setattr(pybtex.plugin, "find_plugin", original)  # restored after the test
    memo_pybtex.setup(None)
    cached = pybtex.plugin.find_plugin
    assert cached is not original and cached.__wrapped__ is original
    for group, name in [("pybtex.backends", "plaintext"), ("pybtex.style.formatting", "unsrt")]:
        assert cached(group, name) is original(group, name)
    assert cached.cache_info().hits == 0 and cached("pybtex.backends", "plaintext") and cached.cache_info().hits == 1
    memo_pybtex.setup(None)    # a second setup (Sphinx builds again in one process) does not wrap twice
    assert pybtex.plugin.find_plugin is cached
