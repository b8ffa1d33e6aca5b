/* KQI web UI: the lineage screen (KQI addition). lineage?kind=<kind>&id=<id> draws the graph
 * of GET /lineage/{kind}/{id} with cytoscape.js (npm, served from static/cytoscape/) and its
 * dagre layout (layers from left to right: what came first on the left). Each node opens its
 * page when clicked; the table under the graph lists the same nodes with their commit and image.
 * A preprocessing run may also be named by its definition and data:
 * lineage?kind=preprocessing&preprocessId=P&dataId=D.
 *
 * As everywhere in the UI, every text goes in through textContent (KQI.el) or as cytoscape
 * labels (drawn on a canvas), never as markup.
 */
"use strict";

(function () {
  const t = KQI.t;
  const el = KQI.el;
  const KINDS = ["data", "preprocessing", "dataset", "training", "inference", "notebook"];
  // shape and colour of each kind's nodes
  const LOOK = {
    data: { shape: "round-rectangle", color: "#4c8bf5" },
    preprocessing: { shape: "diamond", color: "#9c27b0" },
    dataset: { shape: "barrel", color: "#2e9e5b" },
    training: { shape: "rectangle", color: "#f57c00" },
    inference: { shape: "hexagon", color: "#d84343" },
    notebook: { shape: "ellipse", color: "#607d8b" },
  };

  function kindLabel(kind) {
    return t("lineage.kind_" + kind);
  }

  function nodeLabel(node) {
    const name = node.name.length > 28 ? node.name.slice(0, 27) + "…" : node.name;
    return kindLabel(node.kind) + " " + node.id + "\n" + name + (node.status ? "\n(" + node.status + ")" : "");
  }

  function commitText(commit) {
    if (!commit) return "";
    const id = commit.commitId ? commit.commitId.slice(0, 10) : "";
    return [commit.repository, commit.branch, id].filter(Boolean).join(" · ");
  }

  /** {kind, id} of the address, resolving a preprocessing run named by definition and data. */
  async function target(query) {
    const kind = query.get("kind");
    let id = query.get("id");
    if (kind === "preprocessing" && !id && /^\d+$/.test(query.get("preprocessId") || "")
        && /^\d+$/.test(query.get("dataId") || "")) {
      const history = await KQI.api("GET", "/preprocessings/" + query.get("preprocessId") + "/histories/"
                                    + query.get("dataId"));
      id = String(history.historyId);
    }
    if (KINDS.indexOf(kind) < 0 || !/^\d+$/.test(id || "")) return null;
    return { kind: kind, id: id };
  }

  function elements(graph) {
    const out = [];
    for (const node of graph.nodes) {
      out.push({
        group: "nodes",
        data: { id: node.key, label: nodeLabel(node), url: node.url, kind: node.kind,
                color: LOOK[node.kind].color, shape: LOOK[node.kind].shape },
        classes: node.key === graph.root ? "root" : "",
      });
    }
    for (const edge of graph.edges) {
      out.push({
        group: "edges",
        data: { id: edge.from + ">" + edge.to + ">" + edge.relation, source: edge.from, target: edge.to,
                label: t("lineage.rel_" + edge.relation) },
      });
    }
    return out;
  }

  function draw(container, graph) {
    const text = getComputedStyle(document.body).color || "#222";
    const paper = getComputedStyle(document.body).backgroundColor || "#fff"; // (light or dark theme)
    let hasDagre = false; // cytoscape-dagre registers itself on window.cytoscape when it loads
    try { hasDagre = !!cytoscape("layout", "dagre"); } catch (e) { hasDagre = false; }
    const cy = cytoscape({
      container: container,
      elements: elements(graph),
      wheelSensitivity: 0.3,
      maxZoom: 2,
      style: [
        { selector: "node", style: {
          "shape": "data(shape)", "background-color": "data(color)", "background-opacity": 0.18,
          "border-width": 2, "border-color": "data(color)", "label": "data(label)", "color": text,
          "font-size": 12, "text-wrap": "wrap", "text-valign": "center", "text-halign": "center",
          "width": 150, "height": 60, "text-max-width": 140 } },
        { selector: "node.root", style: { "border-width": 5, "background-opacity": 0.35 } },
        { selector: "node:active, node:selected", style: { "overlay-opacity": 0.12 } },
        { selector: "edge", style: {
          "curve-style": "bezier", "target-arrow-shape": "triangle", "width": 1.5, "line-color": "#888",
          "target-arrow-color": "#888", "label": "data(label)", "font-size": 9, "color": text,
          "text-background-color": paper, "text-background-opacity": 0.7, "text-background-padding": 2 } },
      ],
      layout: hasDagre
        ? { name: "dagre", rankDir: "LR", nodeSep: 30, rankSep: 55, fit: true, padding: 20,
            // dagre's routes for the edges that skip a layer, around the nodes in between
            useDagreEdgeControlPoints: true, automaticDagreEdgeStyle: true }
        : { name: "breadthfirst", directed: true, fit: true, padding: 20 },
    });
    cy.on("tap", "node", (event) => {
      const url = event.target.data("url");
      if (url) window.location.href = url;
    });
    cy.on("mouseover", "node", () => { container.style.cursor = "pointer"; });
    cy.on("mouseout", "node", () => { container.style.cursor = ""; });
    return cy;
  }

  function table(graph) {
    const body = el("tbody");
    for (const node of graph.nodes) {
      body.appendChild(el("tr", { "data-key": node.key, class: node.key === graph.root ? "table-active" : "" },
        el("td", { text: kindLabel(node.kind) }),
        el("td", {}, el("a", { href: node.url, class: "kqi-lineage-node-link", text: node.id + ": " + node.name })),
        el("td", { text: node.status || "" }),
        el("td", { class: "font-monospace small", text: commitText(node.commit) }),
        el("td", { class: "font-monospace small", text: node.image || "" }),
        el("td", { text: KQI.formatDate ? KQI.formatDate(node.createdAt) : node.createdAt || "" })));
    }
    return el("table", { class: "table table-sm align-middle", id: "lineage-nodes" },
      el("thead", {}, el("tr", {},
        el("th", { text: t("lineage.kind") }), el("th", { text: t("common.name") }),
        el("th", { text: t("lineage.status") }), el("th", { text: t("lineage.commit") }),
        el("th", { text: t("lineage.image") }), el("th", { text: t("common.created_at") }))),
      body);
  }

  KQI.pages.lineage = async function () {
    const query = new URLSearchParams(window.location.search);
    const form = KQI.$("#lineage-form");
    const direction = query.get("direction") || "both";
    const depth = query.get("depth") || "";
    KQI.$("#lineage-direction").value = ["up", "down", "both"].indexOf(direction) >= 0 ? direction : "both";
    KQI.$("#lineage-depth").value = depth;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const next = new URLSearchParams(window.location.search);
      next.set("direction", KQI.$("#lineage-direction").value);
      const wanted = KQI.$("#lineage-depth").value.trim();
      if (wanted) next.set("depth", wanted);
      else next.delete("depth");
      window.location.search = next.toString();
    });
    const what = await target(query);
    if (!what) {
      KQI.show("lineage-messages", "info", t("lineage.no_object"));
      return;
    }
    const params = new URLSearchParams({ direction: KQI.$("#lineage-direction").value });
    if (depth) params.set("depth", depth);
    const graph = await KQI.api("GET", "/lineage/" + what.kind + "/" + what.id + "?" + params.toString());
    const root = graph.nodes.find((n) => n.key === graph.root);
    if (root) {
      KQI.$("#lineage-heading").textContent = t("lineage.of", { what: kindLabel(root.kind) + " " + root.id + ": " + root.name });
      KQI.$("#lineage-back").href = root.url;
      KQI.$("#lineage-back").classList.remove("d-none");
    }
    KQI.$("#lineage-summary").textContent = t("lineage.summary", { nodes: graph.nodes.length, edges: graph.edges.length });
    if (graph.truncated) KQI.show("lineage-messages", "warning", t("lineage.truncated"));
    KQI.clear(KQI.$("#lineage-table")).appendChild(table(graph));
    const container = KQI.$("#lineage-graph");
    if (typeof window.cytoscape !== "function") {
      KQI.show("lineage-messages", "danger", t("lineage.no_library"));
      container.classList.add("d-none");
      return;
    }
    const cy = draw(container, graph);
    KQI.lineage = { cy: cy, graph: graph };
    document.body.setAttribute("data-lineage-ready", String(cy.nodes().length));
  };
})();
