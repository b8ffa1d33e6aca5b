/* KQI web UI: the "Lineage" link on the pages of one data, dataset, preprocessing run, training,
 * inference or notebook (KQI addition). It reads which object the page shows from its address
 * (data#/edit/5, datasets#/edit/3, preprocessing#/history/2/log/7, training?id=4, inference?id=1,
 * notebooks?id=2) and shows a link to lineage?kind=...&id=... above the page; elsewhere nothing.
 */
"use strict";

(function () {
  function target() {
    const page = document.body.getAttribute("data-page");
    const id = new URLSearchParams(window.location.search).get("id") || "";
    const hash = window.location.hash;
    let m;
    if ((page === "training" || page === "inference" || page === "notebooks") && /^\d+$/.test(id)) {
      return { kind: page === "notebooks" ? "notebook" : page, id: id };
    }
    if ((page === "data" || page === "datasets") && (m = /^#\/edit\/(\d+)(?:$|[/?])/.exec(hash))) {
      return { kind: page === "data" ? "data" : "dataset", id: m[1] };
    }
    if (page === "preprocessing" && (m = /^#\/history\/(\d+)\/log\/(\d+)(?:$|[/?])/.exec(hash))) {
      return { kind: "preprocessing", preprocessId: m[1], dataId: m[2] };
    }
    return null;
  }

  function update() {
    const KQI = window.KQI;
    if (!KQI || !KQI.data.urls.lineage || !KQI.has("GET /lineage/{}/{}")) return;
    const main = document.getElementById("kqi-main");
    if (!main) return;
    let bar = document.getElementById("kqi-lineage-bar");
    const what = target();
    if (!what) {
      if (bar) bar.classList.add("d-none");
      return;
    }
    if (!bar) {
      bar = KQI.el("div", { id: "kqi-lineage-bar", class: "d-flex justify-content-end mb-2" },
        KQI.el("a", { id: "kqi-lineage-link", class: "btn btn-sm btn-outline-secondary",
                      text: KQI.t("lineage.link"), title: KQI.t("lineage.link_title") }));
      main.insertBefore(bar, main.firstChild);
    }
    bar.classList.remove("d-none");
    const params = new URLSearchParams({ kind: what.kind });
    for (const key of ["id", "preprocessId", "dataId"]) if (what[key]) params.set(key, what[key]);
    bar.querySelector("a").href = KQI.data.urls.lineage + "?" + params.toString();
  }

  document.addEventListener("DOMContentLoaded", update);
  window.addEventListener("hashchange", update);
  window.addEventListener("popstate", update);
})();
