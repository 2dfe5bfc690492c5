"""Checks every chapter's claim tests share: numbered, captioned, referenced figures and a slider that works
with no kernel. Each chapter's test module calls these with its own figure-name prefix and counts."""


def assert_figures_numbered_captioned_and_referenced(executed, *, prefix: str, at_least: int) -> None:
    """Every figure cell (myst-nb ``mystnb.figure`` metadata) has a caption and a name ``prefix...``, is
    referenced with ``{numref}`` from the prose, shows an image or HTML, and shows nothing else: a glued value
    or a table would land inside the caption."""
    text = "\n".join(c.source for c in executed.cells if c.cell_type == "markdown")
    figures = [c for c in executed.cells if c.cell_type == "code" and "figure" in c.metadata.get("mystnb", {})]
    assert len(figures) >= at_least
    for c in figures:
        options = c.metadata["mystnb"]["figure"]
        assert options["caption"] and options["name"].startswith(prefix)
        assert f"{{numref}}`{options['name']}`" in text, f"{options['name']} is never referenced"
        kinds = {k for o in c.outputs for k in o.get("data", {})}
        assert kinds & {"image/png", "text/html"}, f"{options['name']} shows nothing"
        assert all("scrapbook" not in o.get("metadata", {}) for o in c.outputs)


def slider_cell(executed, *, min_frames: int = 5):
    """The code cell that calls ``frame_slider``, after checking that its output is the self-contained slider
    (at least ``min_frames`` embedded PNG frames, a range control and its script)."""
    cell = next(c for c in executed.cells if c.cell_type == "code" and "frame_slider(" in c.source)
    html = next(o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {}))
    assert html.count('class="mk-frame"') >= min_frames and html.count("data:image/png;base64") >= min_frames
    assert "<script>" in html and 'type="range"' in html
    return cell


def prose(executed) -> str:
    """The chapter's markdown cells, joined."""
    return "\n".join(c.source for c in executed.cells if c.cell_type == "markdown")


def assert_every_glued_name_in_the_prose_exists(executed) -> None:
    """Every ``{glue:text}`` role in the prose names a value the notebook glued (and there is at least one)."""
    import re

    from mlsec_kit.notebook import glued_values

    glued = glued_values(executed)
    used = set(re.findall(r"\{glue:text\}`(\w+)", prose(executed)))
    assert used and used <= set(glued), sorted(used - set(glued))
