"""One install source: the repository and the version live in mlsec_kit/_release.py; everything else derives.

Checked here: the repository URL in _config.yml, every install line (notebooks' first cells, README, how-to
page, teaching guide with its Gradescope setup), pyproject's version; and scripts/set_repository.py, which
rewrites all of it for a fork."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

import mlsec_kit
from mlsec_kit._release import REPOSITORY, VERSION, install_requirement

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "set_repository.py"
sys.path.insert(0, str(ROOT / "scripts"))
import set_repository as sr  # noqa: E402


def test_install_requirement_is_pinned_to_the_release_tag():
    assert install_requirement() == f"mlsec-kit @ git+{REPOSITORY}@v{VERSION}"
    assert install_requirement(["art", "opacus"]) == f"mlsec-kit[art,opacus] @ git+{REPOSITORY}@v{VERSION}"
    assert sr.requirement(*sr.release(), "[art]") == install_requirement(["art"])


def test_config_and_package_version_derive_from_release():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == REPOSITORY
    assert mlsec_kit.__version__ == VERSION
    assert 'version = { attr = "mlsec_kit._release.VERSION" }' in (ROOT / "pyproject.toml").read_text()


def test_every_derived_line_is_in_sync():
    drift = sr.sync(ROOT, check=True)
    assert not drift, f"run `python scripts/set_repository.py --sync`: {[str(p) for p in drift]}"


def test_nothing_installs_an_unpinned_name():
    """No install line anywhere names the kit without the repository and tag (a name on a registry that the
    project does not own would run whoever registers it in every student's session)."""
    loose = re.compile(r"pip3? install (?:-q )?\\?\"?mlsec-kit(?!\S* @ git\+)")
    hits = []
    for path, text in sr._tracked_text_files(ROOT):
        if path.suffix in {".md", ".ipynb", ".yml", ".txt", ".sh"} or path.name == "README.md":
            hits += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in loose.finditer(text)]
    assert not hits, hits
    for doc in ("README.md", "book/teaching_guide.md", "book/how_to_use.md"):
        assert install_requirement() in (ROOT / doc).read_text(), doc


def _copy_tree(dest: Path) -> Path:
    for path, _ in sr._tracked_text_files(ROOT):
        target = dest / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return dest


def test_set_repository_rewrites_everything_for_a_fork(tmp_path):
    root = _copy_tree(tmp_path / "book")
    fork = "https://github.com/some-teacher/mlsec-book-fall"
    proc = subprocess.run([sys.executable, str(SCRIPT), fork, "--root", str(root)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert sr.release(root) == (fork, VERSION)
    assert yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"] == fork
    old_slug = REPOSITORY.removeprefix("https://github.com/")
    left = [str(p.relative_to(root)) for p, text in sr._tracked_text_files(root)
            if REPOSITORY in text or re.search(rf"(?<![\w.-]){re.escape(old_slug)}(?![\w-])", text)]
    assert not left, f"the old repository is still named in {left}"
    wanted = f"mlsec-kit[art] @ git+{fork}@v{VERSION}"
    assert wanted in (root / "chapters" / "03_evasion_whitebox.ipynb").read_text()
    # the teaching guide's install line (the Gradescope zip derives its own from _release.py at build time)
    assert f"pip install \"mlsec-kit @ git+{fork}@v{VERSION}\"" in (root / "book/teaching_guide.md").read_text()
    assert not sr.sync(root, check=True)
    # only the install lines of the notebooks changed: same cells, same ids, same other text
    import json
    for nb in (root / "chapters").glob("*.ipynb"):
        a = json.loads((ROOT / "chapters" / nb.name).read_text())
        b = json.loads(nb.read_text())
        assert [c.get("id") for c in a["cells"]] == [c.get("id") for c in b["cells"]]
        diff = [i for i, (x, y) in enumerate(zip(a["cells"], b["cells"])) if x != y]
        assert all(a["cells"][i]["cell_type"] == "code" for i in diff) and len(diff) <= 1, (nb.name, diff)


def test_set_repository_refuses_what_is_not_a_repository(tmp_path):
    root = _copy_tree(tmp_path / "book")
    for bad in ("github.com/x/y", "https://gitlab.com/x/y", "https://github.com/x", "https://github.com/x/y z"):
        proc = subprocess.run([sys.executable, str(SCRIPT), bad, "--root", str(root)],
                              capture_output=True, text=True)
        assert proc.returncode == 2 and "https://github.com/<owner>/<name>" in proc.stderr, bad
    assert sr.release(root) == (REPOSITORY, VERSION)


def test_check_reports_drift(tmp_path):
    root = _copy_tree(tmp_path / "book")
    nb = root / "chapters" / "01_threat_models.ipynb"
    nb.write_text(nb.read_text().replace(install_requirement(), "mlsec-kit"))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check", "--root", str(root)], capture_output=True,
                          text=True)
    assert proc.returncode == 1 and "chapters/01_threat_models.ipynb" in proc.stdout
    assert sr.sync(root) == [nb] and not sr.sync(root, check=True)
