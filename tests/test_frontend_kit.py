"""One front-end toolkit (mnist_web/web/kit.js, mnist_web/assets.py): the helpers defined once, the one shared
object declared once, every component that uses the kit loading the same script (so Gradio adds it once),
and no CSS in the Python views (their look is in web/*.css)."""
from __future__ import annotations

import re

from mnist_web import assets, components
from tests.conftest import ROOT

WEB = ROOT / "mnist_web" / "web"
JS = {p.name: p.read_text(encoding="utf-8") for p in sorted(WEB.glob("*.js"))}
KIT_HELPERS = ("el", "mapCanvas", "signedColour", "heatColour", "paintMap", "labelValue", "predictionHtml",
               "pngDataUri")


def definitions(name: str) -> list[str]:
    """The web/*.js files that define `name` as a function or a function-valued const."""
    pattern = re.compile(rf"(function\s+{name}\s*\(|(const|let|var)\s+{name}\s*=\s*(\(|function|async))")
    return [f for f, text in JS.items() if pattern.search(text)]


def test_each_kit_helper_is_defined_once_in_the_kit():
    assert {name: definitions(name) for name in KIT_HELPERS} == {name: ["kit.js"] for name in KIT_HELPERS}


def test_the_components_share_one_declared_object_and_no_other_global():
    # The one shared object, MnistApp, and two libraries with no state of any component's: the page's
    # network (MnistNet) and the page's explanation (MnistExplain, the twin of /explain_strokes)
    assigned = {f: sorted(set(re.findall(r"window\.(\w+)\s*=(?!=)", text))) for f, text in JS.items()}
    assert {f: names for f, names in assigned.items() if names} == {"kit.js": ["MnistApp"],
                                                                   "mnistnet.js": ["MnistNet"],
                                                                   "explain.js": ["MnistExplain"]}
    assert not [f for f, text in JS.items() if "MnistLive" in text or "MnistNetwork" in text]
    # every field and event the components use is listed in the kit's opening comment
    doc = JS["kit.js"].split("(() =>")[0]
    for field in ("net", "key", "model", "pending", "failures", "live", "last", "network"):
        assert re.search(rf"//\s+{field}\s", doc), field
    used = {e for text in JS.values() for e in re.findall(r"\.(?:on|emit)\('(\w+)'", text)}
    assert used == {"choose", "result", "fallback", "whyFallback", "settle"}
    assert all(f"'{e}'" in doc for e in used)


def test_no_component_reaches_into_another_components_markup():
    # e.g. the network view knows whether the canvas is loading its weights from MnistApp.live, not from
    # the canvas's markup: each component queries only its own `element`
    ours = r"document\.querySelector(All)?\(\s*['\"`][^'\"`]*#(sketchpad|network|train-view|train-look)"
    assert {name: re.findall(ours, text) for name, text in JS.items() if re.search(ours, text)} == {}


def test_every_component_that_uses_the_kit_loads_the_same_kit_script():
    kit = assets.script_tag("kit.js")
    assert kit.startswith("<script>") and "window.MnistApp = {" in kit
    built = {"sketch": components.sketch_canvas(), "network": components.network_view(),
             "train": components.train_view()}
    for name, comp in built.items():
        assert comp.head.startswith(kit), name          # byte for byte: Gradio adds an inline script once
        assert "MnistApp" in comp.js_on_load, name
    assert "<script>" + JS["mnistnet.js"] + "</script>" in built["sketch"].head
    assert "window.MnistApp" in components.LIVE_EVENT_JS and "window.MnistApp" in components.CHOOSE_MODEL_JS


def test_the_app_stylesheet_is_the_web_css_files():
    css = (WEB / "app.css").read_text(encoding="utf-8")
    assert css in assets.APP_CSS and ".confusion-wrap table.confusion td" in css and ".lookalike-strip" in css
    if (WEB / "charts.css").is_file():
        assert (WEB / "charts.css").read_text(encoding="utf-8") in assets.APP_CSS


def static_declarations(source: str) -> list[str]:
    """Inline style declarations in Python string literals whose value is fixed (no {formatted} part)."""
    found = []
    for style in re.findall(r"style='([^']*)'|style=\"([^\"]*)\"", source):
        for decl in filter(None, (d.strip() for d in "".join(style).split(";"))):
            if "{" not in decl:
                found.append(decl)
    return found


def test_no_css_in_the_python_views():
    for name in ("views.py", "insight_views.py", "components.py", "assets.py"):
        source = (ROOT / "mnist_web" / name).read_text(encoding="utf-8")
        assert not re.search(r'CSS\s*=\s*[rf]?"""', source) and static_declarations(source) == [], name
    assert static_declarations("f\"<div style='width:{pct:.1f}%'>\"") == []          # a per-value width may stay
    assert static_declarations("\"<th style='opacity:.7'>\"") == ["opacity:.7"]
