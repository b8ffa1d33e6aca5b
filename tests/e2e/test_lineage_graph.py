"""The lineage screen in a real browser against a real KQI Hub (issue 15): from an inference's
page the "Lineage" link opens the graph drawn by cytoscape.js (data → preprocessing → data →
dataset → training → child training → inference), every node is drawn, a click on a node opens
its page, and the data page's link opens the same chain from the other end. Screenshots in
tests/artifacts/ui-lineage-*.png.
"""
from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from ..test_lineage import make_chain
from .conftest import sign_in


def shot(page, artifacts_dir, name):
    page.screenshot(path=os.path.join(artifacts_dir, f"ui-lineage-{name}.png"), full_page=True, animations="disabled")


def click_node(page, key: str) -> None:
    """Click the centre of a node of the graph where cytoscape drew it."""
    box = page.evaluate("""(key) => {
        const cy = KQI.lineage.cy, node = cy.getElementById(key), rect = cy.container().getBoundingClientRect();
        const p = node.renderedPosition();
        return {x: rect.left + p.x, y: rect.top + p.y, visible: node.visible()};
    }""", key)
    assert box["visible"], key
    page.mouse.click(box["x"], box["y"])


@pytest.mark.sqlite_only
def test_the_lineage_graph_is_drawn_and_its_nodes_open_their_pages(platform, browser, tmp_path, artifacts_dir):
    c = make_chain(platform, str(tmp_path / "repo"), notebook=False)
    user = c["user"]
    keys = {f"data:{c['raw']}", f"preprocessing:{c['history']}", f"data:{c['clean']}", f"dataset:{c['dataset']}",
            f"training:{c['base']}", f"training:{c['child']}", f"inference:{c['inference']}"}

    context = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        # the inference's page links to its lineage
        sign_in(page, platform, user.name, user.password, f"/inference?id={c['inference']}")
        link = page.locator("#kqi-lineage-link")
        expect(link).to_be_visible()
        expect(link).to_have_text("Lineage")
        shot(page, artifacts_dir, "link-on-inference-page")
        link.click()
        page.wait_for_url(f"**/lineage?kind=inference&id={c['inference']}")
        page.wait_for_selector("body[data-lineage-ready]")

        # every node and edge is in cytoscape's graph, laid out inside the canvas
        drawn = page.evaluate("""() => {
            const cy = KQI.lineage.cy;
            return {nodes: cy.nodes().map((n) => n.id()), edges: cy.edges().length,
                    labels: cy.nodes().map((n) => n.data('label')),
                    layout: cy.nodes().every((n) => { const b = n.renderedBoundingBox();
                        return b.x1 >= 0 && b.y1 >= 0 && b.x2 <= cy.width() + 1 && b.y2 <= cy.height() + 1; }),
                    canvases: cy.container().querySelectorAll('canvas').length};
        }""")
        assert set(drawn["nodes"]) == keys, drawn
        assert drawn["edges"] == 8 and drawn["layout"] and drawn["canvases"] >= 1, drawn
        assert f"Training {c['base']}\nlin-base\n(Completed)" in drawn["labels"]
        assert f"Data {c['raw']}\nlin-raw" in drawn["labels"]
        # dagre's layers run left to right: the first data is left of the inference
        xs = page.evaluate("(keys) => keys.map((k) => KQI.lineage.cy.getElementById(k).position('x'))",
                           [f"data:{c['raw']}", f"dataset:{c['dataset']}", f"inference:{c['inference']}"])
        assert xs[0] < xs[1] < xs[2], xs
        expect(page.locator("#lineage-heading")).to_have_text(f"Lineage of Inference {c['inference']}: lin-score")
        expect(page.locator("#lineage-summary")).to_have_text("7 nodes, 8 links")
        expect(page.locator("#lineage-nodes tbody tr")).to_have_count(7)
        expect(page.locator(f'#lineage-nodes tr[data-key="training:{c["child"]}"]')).to_contain_text(c["commit"][:10])
        expect(page.locator(f'#lineage-nodes tr[data-key="training:{c["child"]}"]')).to_contain_text("/python:3.11")
        shot(page, artifacts_dir, "graph")

        # a click on a node opens its page
        click_node(page, f"training:{c['base']}")
        page.wait_for_url(f"**/training?id={c['base']}")
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator("#job-title")).to_contain_text("lin-base")
        expect(page.locator("#kqi-lineage-link")).to_have_attribute(
            "href", f"/services/kqi/lineage?kind=training&id={c['base']}")
        # the dataset's page links to the dataset's graph; a list page has no link
        page.goto(platform.service_url + f"/datasets#/edit/{c['dataset']}")
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator("#kqi-lineage-link")).to_have_attribute(
            "href", f"/services/kqi/lineage?kind=dataset&id={c['dataset']}")
        page.goto(platform.service_url + "/datasets#/")
        page.wait_for_selector("body[data-kqi-ready]")
        expect(page.locator("#kqi-lineage-link")).to_be_hidden()

        # from the first data's page: the chain down to the inference
        page.goto(platform.service_url + f"/data#/edit/{c['raw']}")
        page.wait_for_selector("body[data-kqi-ready]")
        link = page.locator("#kqi-lineage-link")
        expect(link).to_be_visible()
        link.click()
        page.wait_for_url(f"**/lineage?kind=data&id={c['raw']}")
        page.wait_for_selector("body[data-lineage-ready]")
        nodes = page.evaluate("() => KQI.lineage.cy.nodes().map((n) => n.id())")
        assert set(nodes) == keys, nodes
        shot(page, artifacts_dir, "from-data")
        click_node(page, f"preprocessing:{c['history']}")
        page.wait_for_url(f"**/preprocessing#/history/{c['prep']}/log/{c['raw']}")
        page.wait_for_selector("body[data-kqi-ready]")
        # the preprocessing run's page (named by definition and data) links back to the same node
        expect(page.locator("#kqi-lineage-link")).to_have_attribute(
            "href", f"/services/kqi/lineage?kind=preprocessing&preprocessId={c['prep']}&dataId={c['raw']}")
        page.locator("#kqi-lineage-link").click()
        page.wait_for_selector("body[data-lineage-ready]")
        assert page.evaluate("() => KQI.lineage.graph.root") == f"preprocessing:{c['history']}"

        # "what came from it" only: the first data is not in it
        page.select_option("#lineage-direction", "down")
        page.click("#lineage-apply")
        page.wait_for_url("**direction=down**")
        page.wait_for_selector("body[data-lineage-ready]")
        nodes = page.evaluate("() => KQI.lineage.cy.nodes().map((n) => n.id())")
        assert set(nodes) == keys - {f"data:{c['raw']}"}, nodes
    finally:
        context.close()

    # in Japanese
    context = browser.new_context(locale="ja-JP", viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        sign_in(page, platform, user.name, user.password, f"/lineage?kind=dataset&id={c['dataset']}")
        page.wait_for_selector("body[data-lineage-ready]")
        expect(page.locator("#lineage-heading")).to_contain_text("の系譜")
        expect(page.locator("#lineage-direction option:checked")).to_have_text("両方向")
        labels = page.evaluate("() => KQI.lineage.cy.nodes().map((n) => n.data('label'))")
        assert f"データセット {c['dataset']}\nlin-set" in labels, labels
        shot(page, artifacts_dir, "graph-ja")
    finally:
        context.close()
