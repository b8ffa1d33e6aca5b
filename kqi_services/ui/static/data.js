/* KQI web UI: the data (データ管理), dataset (データセット管理) and preprocessing (前処理管理)
 * screens. Each screen is one page whose views are chosen by the address's hash:
 *
 *   data           #/ (list, search, paging, selection)   #/new   #/edit/<id>
 *   datasets       #/   #/new   #/edit/<id>   #/copy/<id>
 *   preprocessing  #/   #/new   #/edit/<id>   #/run?data=1,2&preprocessing=3
 *                  #/history/<id>   #/history/<id>/log/<dataId>
 *
 * As in kqi.js, data reaches the page only through textContent and form values.
 * Files are uploaded with the SDK's protocol straight from the browser: one signed URL
 * per 16 MiB part, each part a File.slice sent by XHR (so nothing reads a whole file).
 */
"use strict";

(function () {
  const KQI = window.KQI;
  const t = KQI.t;
  const el = KQI.el;

  const PART_SIZE = 16 * 1024 * 1024; // the SDK's part size
  const PART_CONCURRENCY = 3;
  const ACTIVE = ["Queued", "Running"];
  const POLL_MS = 1500;

  // ----------------------------------------------------------------- helpers
  const formatDate = (value, what) => KQI.formatDate(value, what);

  function formatSize(bytes) {
    if (bytes === null || bytes === undefined) return t("common.none");
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = Number(bytes);
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return (unit === 0 ? String(value) : value.toFixed(value < 10 ? 2 : 1)) + " " + units[unit];
  }

  function orNone(value) {
    return value === null || value === undefined || value === "" ? t("common.none") : String(value);
  }

  function query(params) {
    const parts = [];
    for (const key of Object.keys(params)) {
      const value = params[key];
      if (value === null || value === undefined || value === "") continue;
      parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(String(value)));
    }
    return parts.length ? "?" + parts.join("&") : "";
  }

  /** The hash as {parts: ["edit", "5"], params: URLSearchParams}. */
  function currentRoute() {
    const hash = window.location.hash.replace(/^#\/?/, "");
    const cut = hash.indexOf("?");
    const path = cut >= 0 ? hash.slice(0, cut) : hash;
    const params = new URLSearchParams(cut >= 0 ? hash.slice(cut + 1) : "");
    return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: params };
  }

  function idList(text) {
    return (text || "").split(",").map((x) => Number(x.trim())).filter((x) => Number.isInteger(x) && x > 0);
  }

  function tagBadges(tags) {
    return (tags || []).map((tag) => el("span", { class: "badge rounded-pill text-bg-info me-1 kqi-tag", text: tag }));
  }

  const STATUS_KIND = { Queued: "secondary", Running: "primary", Completed: "success", Failed: "danger",
    Killed: "warning", Error: "danger", Opened: "info" };

  function statusBadge(status) {
    const key = "prep.status_" + status;
    const text = t(key);
    return el("span", {
      class: "badge kqi-status text-bg-" + (STATUS_KIND[status] || "secondary"),
      dataset: { status: status }, text: text === key ? status : text, title: status || null,
    });
  }

  function dataUrl(id) {
    return KQI.data.urls.data + "#/edit/" + encodeURIComponent(id);
  }

  function canRunPreprocessing() {
    return KQI.has("POST /preprocessings/{}/run") && KQI.has("GET /preprocessings");
  }

  function emptyRow(colspan, text) {
    return el("tr", { class: "kqi-empty" }, el("td", { colspan: String(colspan), class: "text-body-secondary", text: text }));
  }

  function readNumber(input) {
    const text = input.value.trim();
    return text === "" ? null : Number(text);
  }

  /** Messages that survive one change of view (e.g. "Saved." after a save that moves on). */
  let flash = null;

  function setFlash(kind, message, errors) {
    flash = { kind: kind, message: message, errors: errors };
  }

  function showFlash() {
    if (flash) {
      KQI.show("kqi-alerts", flash.kind, flash.message, flash.errors);
      flash = null;
    }
  }

  let poller = null;

  function stopPolling() {
    if (poller) window.clearTimeout(poller);
    poller = null;
  }

  /** Show one view of the page (section.kqi-view) and say which in body[data-kqi-view]. */
  function showView(id) {
    KQI.$$(".kqi-view").forEach((view) => view.classList.toggle("d-none", view.id !== id));
    document.body.removeAttribute("data-kqi-view");
  }

  function viewReady(id) {
    document.body.setAttribute("data-kqi-view", id);
  }

  /** Render the view of the hash now and at every change of it. */
  function router(render) {
    let generation = 0;
    async function run() {
      stopPolling();
      generation += 1;
      const mine = generation;
      KQI.clear(KQI.$("#kqi-alerts"));
      showFlash();
      try {
        await render(currentRoute(), () => mine === generation);
      } catch (err) {
        if (mine === generation) KQI.showError("kqi-alerts", err);
      }
    }
    window.addEventListener("hashchange", run);
    return run();
  }

  function go(hash) {
    if (window.location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
    else window.location.hash = hash;
  }

  function confirmed(question) {
    return window.confirm(question);
  }

  // the one pager, page state and page fetch of every list (kqi.js)
  const renderPager = KQI.renderPager;
  const listState = KQI.pageState;
  const fetchPage = KQI.fetchPage;

  /** Every job that locks a dataset: the first ones by name, "and N more" and a link to the whole
   * (paged) list of them, for trainings and inferences. */
  async function showLockUsers(dataset) {
    const box = KQI.$("#dataset-lock-reasons");
    const shown = 10;
    const kinds = [
      { path: "/training", screen: "training", label: "datasets.used_by_trainings" },
      { path: "/inferences", screen: "inference", label: "datasets.used_by_inferences" },
    ].filter((k) => KQI.has("GET " + k.path));
    const results = await Promise.all(kinds.map((k) => fetchPage(k.path, { dataSet: dataset.name, perPage: shown, page: 1 })));
    const items = [];
    kinds.forEach((kind, i) => {
      const all = results[i].items;
      const mine = all.filter((j) => j.dataSet && Number(j.dataSet.id) === Number(dataset.id));
      if (!mine.length) return;
      // the name filter is a part-of-the-name search: count the rest only when every row was this dataset's
      const more = mine.length === all.length ? results[i].total - mine.length : 0;
      const listUrl = KQI.data.urls[kind.screen] + "?" + new URLSearchParams({ dataSet: dataset.name }).toString();
      items.push(el("li", { class: "kqi-lock-users", dataset: { kind: kind.screen } },
        el("span", { text: t(kind.label) + " " }),
        mine.map((j, n) => [n ? ", " : null,
          el("a", { href: KQI.data.urls[kind.screen] + "?id=" + encodeURIComponent(j.id), text: (j.displayId || j.id) + ":" + j.name })]),
        more > 0 ? el("span", { class: "kqi-lock-more", text: " " + t("datasets.and_more", { count: more }) }) : null,
        " ",
        el("a", { class: "kqi-lock-all", href: listUrl, text: t("datasets.see_all_users") })));
    });
    KQI.clear(box);
    if (items.length) KQI.append(box, items);
    else KQI.append(box, (dataset.lockReasons || []).map((r) => el("li", { text: r })));
  }

  function noTenant(account, viewId) {
    if (account.selectedTenant) return false;
    showView(viewId);
    KQI.show("kqi-alerts", "warning", t("common.no_tenant"));
    return true;
  }

  // ================================================================== uploads
  /** PUT one part (a Blob) to its signed URL; resolves with the part's ETag. */
  function putPart(url, blob, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", url);
      xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded));
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          const etag = xhr.getResponseHeader("ETag");
          if (etag) resolve(etag);
          else reject(new Error(t("upload.no_etag")));
          return;
        }
        let detail = null;
        try {
          detail = JSON.parse(xhr.responseText).detail;
        } catch (e) {
          detail = null;
        }
        reject(new Error(t("upload.part_failed", { status: xhr.status, reason: detail || xhr.statusText || "" })));
      });
      xhr.addEventListener("error", () => reject(new Error(t("upload.network"))));
      xhr.addEventListener("abort", () => reject(new Error(t("upload.network"))));
      xhr.send(blob);
    });
  }

  /** Upload one File with the SDK's protocol (parameter, parts, complete); its storedPath. */
  async function uploadFile(file, type, onProgress) {
    const parts = Math.max(1, Math.ceil(file.size / PART_SIZE));
    const upload = await KQI.api("GET", "/upload/parameter" + query({ fileName: file.name, partSum: parts, type: type }));
    const loaded = new Array(parts).fill(0);
    const etags = new Array(parts);
    const report = () => onProgress(loaded.reduce((a, b) => a + b, 0));
    let next = 0;
    async function worker() {
      while (next < parts) {
        const index = next;
        next += 1;
        const start = index * PART_SIZE;
        const blob = file.slice(start, Math.min(file.size, start + PART_SIZE));
        etags[index] = await putPart(upload.uris[index], blob, (n) => {
          loaded[index] = Math.min(n, blob.size);
          report();
        });
        loaded[index] = blob.size;
        report();
      }
    }
    const workers = [];
    for (let i = 0; i < Math.min(PART_CONCURRENCY, parts); i++) workers.push(worker());
    await Promise.all(workers);
    await KQI.api("POST", "/upload/complete", {
      key: upload.key, uploadId: upload.uploadId, partETags: etags.map((etag, i) => (i + 1) + "+" + etag),
    });
    return upload.storedPath;
  }

  // ===================================================================== data
  KQI.pages.data = function (account) {
    if (noTenant(account, "data-list-view")) return null;
    const listView = dataListView();
    const editView = dataEditView();
    return router(async (route, current) => {
      const [first, second] = route.parts;
      if (first === "new") return editView.open(null, current);
      if (first === "edit" && second) return editView.open(Number(second), current);
      return listView.open(route.params, current);
    });
  };

  function dataListView() {
    const selected = new Map(); // id -> name, kept across pages and searches
    const runButton = KQI.$("#data-run");
    const checkAll = KQI.$("#data-check-all");
    let rows = [];
    let params = new URLSearchParams();

    if (canRunPreprocessing()) runButton.classList.remove("d-none");
    runButton.addEventListener("click", () => {
      if (!selected.size) return;
      window.location.href = KQI.data.urls.preprocessing + "#/run" + query({ data: Array.from(selected.keys()).join(",") });
    });
    checkAll.addEventListener("change", () => {
      for (const item of rows) {
        if (checkAll.checked) selected.set(item.id, item.name);
        else selected.delete(item.id);
      }
      KQI.$$("#data-rows .kqi-select").forEach((box) => { box.checked = checkAll.checked; });
      updateSelection();
    });
    KQI.$("#data-search").addEventListener("submit", (event) => {
      event.preventDefault();
      const dateOp = KQI.$("#data-search-date-op").value;
      go("#/" + query({
        name: KQI.$("#data-search-name").value.trim(),
        tag: KQI.$("#data-search-tag").value.trim(),
        date: KQI.$("#data-search-date").value,
        dateOp: KQI.$("#data-search-date").value && dateOp !== "on" ? dateOp : "",
        perPage: params.get("perPage"),
      }));
    });
    KQI.$("#data-search-clear").addEventListener("click", () => go("#/" + query({ perPage: params.get("perPage") })));

    function updateSelection() {
      runButton.disabled = selected.size === 0;
      runButton.textContent = selected.size ? t("data.run_selected", { count: selected.size }) : t("data.run");
      const box = KQI.clear(KQI.$("#data-selection"));
      if (selected.size) {
        box.appendChild(el("span", { text: t("data.selected", { count: selected.size }) + " " }));
        box.appendChild(el("a", { href: "#", id: "data-selection-clear", text: t("data.selection_clear"),
          onclick: (event) => {
            event.preventDefault();
            selected.clear();
            KQI.$$("#data-rows .kqi-select").forEach((b) => { b.checked = false; });
            checkAll.checked = false;
            updateSelection();
          } }));
      }
      checkAll.checked = rows.length > 0 && rows.every((item) => selected.has(item.id));
    }

    function createdAtFilter(date, op) {
      if (!date) return "";
      if (op === "since") return ">=" + date;
      if (op === "until") {
        const next = new Date(date + "T00:00:00Z");
        next.setUTCDate(next.getUTCDate() + 1);
        return "<" + next.toISOString().slice(0, 10);
      }
      return date;
    }

    async function loadTags() {
      if (!KQI.has("GET /data/datatags")) return;
      try {
        const tags = (await KQI.api("GET", "/data/datatags")) || [];
        for (const id of ["#data-tag-options", "#data-tag-options-edit"]) {
          KQI.append(KQI.clear(KQI.$(id)), tags.map((tag) => el("option", { value: tag })));
        }
      } catch (err) {
        // the tag suggestions are a convenience only
      }
    }

    async function open(routeParams, current) {
      params = routeParams;
      showView("data-list-view");
      const state = listState(params, { perPage: 20 });
      KQI.$("#data-search-name").value = params.get("name") || "";
      KQI.$("#data-search-tag").value = params.get("tag") || "";
      KQI.$("#data-search-date").value = params.get("date") || "";
      KQI.$("#data-search-date-op").value = params.get("dateOp") || "on";
      loadTags();
      const body = KQI.$("#data-rows");
      const result = await fetchPage("/data", {
        name: params.get("name"), tag: params.get("tag"),
        createdAt: createdAtFilter(params.get("date"), params.get("dateOp")),
        perPage: state.perPage, page: state.page,
      });
      if (!current()) return;
      rows = result.items;
      KQI.clear(body);
      if (!rows.length) body.appendChild(emptyRow(7, t(params.toString() ? "data.none_found" : "data.none")));
      for (const item of rows) {
        const box = el("input", {
          type: "checkbox", class: "form-check-input kqi-select", checked: selected.has(item.id),
          "aria-label": t("data.select", { name: item.name }),
          onchange: (event) => {
            if (event.target.checked) selected.set(item.id, item.name);
            else selected.delete(item.id);
            updateSelection();
          },
        });
        body.appendChild(el("tr", { dataset: { id: String(item.id), name: item.name } },
          el("td", {}, box),
          el("td", { text: String(item.id) }),
          el("td", {},
            el("a", { href: "#/edit/" + item.id, class: "fw-semibold kqi-data-link", text: item.name }),
            item.isRaw ? null : el("span", { class: "badge text-bg-light border ms-1", title: t("data.made_by_preprocessing"),
              text: t("data.derived") })),
          el("td", { class: "kqi-memo", text: orNone(item.memo) }),
          el("td", {}, tagBadges(item.tags)),
          el("td", { class: "text-nowrap", text: formatDate(item.createdAt) }),
          el("td", { text: orNone(item.displayNameCreatedBy || item.createdBy) })));
      }
      renderPager(KQI.$("#data-pager"), state, result.total, (change) => {
        const next = new URLSearchParams(params);
        next.set("page", String(change.page));
        if (change.perPage) next.set("perPage", String(change.perPage));
        go("#/?" + next.toString());
      });
      updateSelection();
      viewReady("data-list");
    }

    return { open: open };
  }

  function dataEditView() {
    const form = KQI.$("#data-form");
    const nameInput = KQI.$("#data-name");
    const memoInput = KQI.$("#data-memo");
    const tagBox = KQI.$("#data-tags");
    const tagInput = KQI.$("#data-tag-input");
    const fileInput = KQI.$("#data-file-input");
    const dropzone = KQI.$("#data-dropzone");
    const uploadList = KQI.$("#data-upload-list");
    const progress = KQI.$("#data-progress");
    const progressBar = KQI.$("#data-progress-bar");
    let editing = null; // the data being edited (details), null when registering
    let tags = [];
    let pending = []; // Files chosen and not yet uploaded
    let existingNames = new Set();
    let uploading = false;
    let carried = null; // files uploaded just before moving to the data's page: shown done

    // ----- tags as chips
    function renderTags() {
      KQI.$$(".kqi-tag-chip", tagBox).forEach((chip) => chip.remove());
      for (const tag of tags) {
        tagBox.insertBefore(el("span", { class: "badge rounded-pill text-bg-info kqi-tag-chip", dataset: { tag: tag } },
          el("span", { text: tag }),
          el("button", { type: "button", class: "btn-close btn-close-white", "aria-label": t("data.tag_remove", { tag: tag }),
            onclick: () => { tags = tags.filter((x) => x !== tag); renderTags(); } })), tagInput);
      }
    }

    function addTag(text) {
      for (const part of text.split(",")) {
        const tag = part.trim();
        if (tag && tags.indexOf(tag) < 0) tags.push(tag);
      }
      renderTags();
    }

    tagInput.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === ",") {
        event.preventDefault();
        addTag(tagInput.value);
        tagInput.value = "";
      } else if (event.key === "Backspace" && !tagInput.value && tags.length) {
        tags.pop();
        renderTags();
      }
    });
    tagInput.addEventListener("change", () => {
      // a choice from the suggestions
      if (tagInput.value.trim()) {
        addTag(tagInput.value);
        tagInput.value = "";
      }
    });
    tagBox.addEventListener("click", (event) => { if (event.target === tagBox) tagInput.focus(); });

    // ----- files to upload
    function addFiles(files) {
      for (const file of files) {
        if (!pending.some((p) => p.name === file.name && p.size === file.size)) pending.push(file);
      }
      renderPending();
    }

    function renderDone(files) {
      KQI.clear(uploadList);
      for (const file of files) {
        uploadList.appendChild(el("li", { class: "list-group-item px-0 kqi-upload-item", dataset: { name: file.name } },
          el("div", { class: "d-flex align-items-center gap-2" },
            el("span", { class: "kqi-file-name me-auto", text: file.name }),
            el("span", { class: "small text-body-secondary text-nowrap", text: formatSize(file.size) }),
            el("span", { class: "small kqi-upload-state text-success", text: t("upload.done") })),
          el("div", { class: "progress mt-1", role: "progressbar", "aria-label": file.name,
            "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "100" },
          el("div", { class: "progress-bar bg-success", style: "width: 100%" }))));
      }
      const total = files.reduce((sum, f) => sum + f.size, 0);
      setProgress(total, total);
    }

    function renderPending() {
      KQI.clear(uploadList);
      pending.forEach((file, index) => {
        const duplicate = existingNames.has(file.name) || pending.findIndex((p) => p.name === file.name) !== index;
        uploadList.appendChild(el("li", { class: "list-group-item px-0 kqi-upload-item", dataset: { name: file.name } },
          el("div", { class: "d-flex align-items-center gap-2" },
            el("span", { class: "kqi-file-name me-auto", text: file.name }),
            el("span", { class: "small text-body-secondary text-nowrap", text: formatSize(file.size) }),
            el("span", { class: "small kqi-upload-state " + (duplicate ? "text-danger" : "text-body-secondary"),
              text: duplicate ? t("upload.duplicate") : t("upload.waiting") }),
            el("button", { type: "button", class: "btn btn-sm btn-link text-danger p-0 kqi-upload-remove", text: t("upload.remove"),
              disabled: uploading,
              onclick: () => { pending.splice(index, 1); renderPending(); } })),
          el("div", { class: "progress mt-1", role: "progressbar", "aria-label": file.name,
            "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0" },
          el("div", { class: "progress-bar", style: "width: 0%" }))));
      });
    }

    function setItem(index, state, fraction, failed) {
      const item = uploadList.children[index];
      if (!item) return;
      const label = KQI.$(".kqi-upload-state", item);
      label.textContent = state;
      label.className = "small kqi-upload-state " + (failed ? "text-danger" : "text-body-secondary");
      if (fraction !== null) {
        const percent = Math.floor(fraction * 100);
        KQI.$(".progress", item).setAttribute("aria-valuenow", String(percent));
        KQI.$(".progress-bar", item).style.width = percent + "%";
      }
      if (failed) KQI.$(".progress-bar", item).classList.add("bg-danger");
    }

    function setProgress(done, total) {
      const percent = total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : 100;
      progress.classList.remove("d-none");
      progress.setAttribute("aria-valuenow", String(percent));
      progressBar.style.width = percent + "%";
      progressBar.textContent = percent + "%";
      progressBar.classList.toggle("progress-bar-striped", percent < 100);
      progressBar.classList.toggle("progress-bar-animated", percent < 100);
      progressBar.classList.toggle("bg-success", percent === 100);
    }

    fileInput.addEventListener("change", () => {
      addFiles(Array.from(fileInput.files || []));
      fileInput.value = "";
    });
    dropzone.addEventListener("dragover", (event) => {
      if (event.dataTransfer && Array.from(event.dataTransfer.types || []).indexOf("Files") >= 0) {
        event.preventDefault();
        dropzone.classList.add("kqi-over");
      }
    });
    dropzone.addEventListener("dragleave", () => dropzone.classList.remove("kqi-over"));
    dropzone.addEventListener("drop", (event) => {
      event.preventDefault();
      dropzone.classList.remove("kqi-over");
      addFiles(Array.from((event.dataTransfer && event.dataTransfer.files) || []));
    });

    /** Upload the pending files one after the other and register each on the data. */
    async function uploadPending(dataId) {
      const files = pending.slice();
      const total = files.reduce((sum, f) => sum + f.size, 0);
      let done = 0;
      uploading = true;
      KQI.$$(".kqi-upload-remove", uploadList).forEach((b) => { b.disabled = true; });
      setProgress(0, total);
      try {
        for (let i = 0; i < files.length; i++) {
          const file = files[i];
          setItem(i, t("upload.uploading"), 0);
          let storedPath;
          try {
            storedPath = await uploadFile(file, "Data", (loaded) => {
              setItem(i, t("upload.uploading"), file.size ? loaded / file.size : 1);
              setProgress(done + loaded, total);
            });
            await KQI.api("POST", "/data/" + dataId + "/files", { files: [{ fileName: file.name, storedPath: storedPath }] });
          } catch (err) {
            setItem(i, t("upload.failed"), null, true);
            throw err;
          }
          done += file.size;
          setProgress(done, total);
          setItem(i, t("upload.done"), 1);
          pending = pending.filter((p) => p !== file);
        }
        setProgress(total, total);
      } finally {
        uploading = false;
      }
    }

    // ----- files already there
    async function loadFiles(id) {
      const files = (await KQI.api("GET", "/data/" + id + "/files?withUrl=true")) || [];
      existingNames = new Set(files.map((f) => f.fileName));
      const rows = KQI.clear(KQI.$("#data-file-rows"));
      KQI.$("#data-file-count").textContent = String(files.length);
      if (!files.length) rows.appendChild(emptyRow(3, t("data.no_files")));
      for (const file of files) {
        rows.appendChild(el("tr", { dataset: { fileId: String(file.fileId), name: file.fileName } },
          el("td", { class: "kqi-file-name" },
            file.url ? el("a", { href: file.url, download: file.fileName, class: "kqi-download", text: file.fileName,
              title: t("data.download") }) : el("span", { text: file.fileName }),
            file.sha256 ? el("div", { class: "small text-body-secondary font-monospace", title: "sha256 " + file.sha256,
              text: "sha256 " + file.sha256.slice(0, 12) + "…" }) : null),
          el("td", { class: "text-end text-nowrap kqi-file-size", dataset: { bytes: String(file.fileSize) },
            text: formatSize(file.fileSize) }),
          el("td", { class: "text-end" },
            el("button", { type: "button", class: "btn btn-sm btn-outline-danger kqi-file-delete", text: t("common.delete"),
              onclick: (event) => deleteFile(event.currentTarget, id, file) }))));
      }
      KQI.$("#data-files-card").classList.remove("d-none");
      renderPending();
    }

    async function deleteFile(button, id, file) {
      if (!confirmed(t("data.confirm_delete_file", { name: file.fileName }))) return;
      await KQI.busy(button, null, async () => {
        try {
          await KQI.api("DELETE", "/data/" + id + "/files/" + file.fileId);
          KQI.show("data-edit-messages", "success", t("data.file_deleted", { name: file.fileName }));
          await loadFiles(id);
        } catch (err) {
          KQI.showError("data-edit-messages", err);
        }
      });
    }

    function renderInfo(data) {
      const info = KQI.clear(KQI.$("#data-info"));
      function row(label, value) {
        info.appendChild(el("dt", { class: "col-sm-4", text: label }));
        info.appendChild(el("dd", { class: "col-sm-8 mb-1" }, value));
      }
      row(t("common.id"), String(data.id));
      row(t("data.created_at"), formatDate(data.createdAt) + " (" + orNone(data.createdBy) + ")");
      row(t("data.modified_at"), formatDate(data.modifiedAt) + " (" + orNone(data.modifiedBy) + ")");
      if (data.parent) {
        row(t("data.parent"), el("a", { href: "#/edit/" + data.parent.id, text: data.parent.id + ": " + data.parent.name }));
      }
      if (data.preprocess) {
        const p = data.preprocess;
        row(t("data.made_by"), el("a", {
          href: KQI.data.urls.preprocessing + "#/history/" + p.preprocessId + "/log/" + p.inputDataId,
          text: p.preprocessName }));
      }
      if (data.children && data.children.length) {
        row(t("data.preprocessed_by"), data.children.map((c) => el("a", {
          class: "d-block", href: KQI.data.urls.preprocessing + "#/history/" + c.preprocessId + "/log/" + data.id,
          text: c.preprocessName })));
      }
      KQI.$("#data-info-card").classList.remove("d-none");
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (uploading) return;
      if (tagInput.value.trim()) {
        addTag(tagInput.value);
        tagInput.value = "";
      }
      const body = { name: nameInput.value.trim(), memo: memoInput.value, tags: tags.slice() };
      const names = pending.map((f) => f.name);
      const clash = names.find((name, i) => existingNames.has(name) || names.indexOf(name) !== i);
      KQI.clear(KQI.$("#data-edit-messages"));
      if (clash) {
        KQI.show("data-edit-messages", "danger", t("upload.duplicate_name", { name: clash }));
        return;
      }
      await KQI.busy(KQI.$("#data-save"), t("common.saving"), async () => {
        let saved = null;
        try {
          saved = editing ? await KQI.api("PUT", "/data/" + editing.id, body) : await KQI.api("POST", "/data", body);
          KQI.markFields(form, {});
        } catch (err) {
          KQI.markFields(form, err.errors);
          KQI.showError("data-edit-messages", err);
          return;
        }
        const count = pending.length;
        const uploadedNow = pending.map((f) => ({ name: f.name, size: f.size }));
        try {
          if (count) await uploadPending(saved.id);
        } catch (err) {
          // the data exists; show its page with what was uploaded and the error
          setFlash("danger", t("upload.failed_after", { name: saved.name, reason: err.detail || err.message }),
            err.errors);
          if (editing) {
            showFlash();
            await loadFiles(saved.id);
          } else {
            go("#/edit/" + saved.id);
          }
          return;
        }
        setFlash("success", count ? t("data.saved_with_files", { name: saved.name, count: count })
          : t(editing ? "common.updated" : "common.created", { name: saved.name }));
        carried = uploadedNow;
        go("#/edit/" + saved.id);
      });
    });

    KQI.$("#data-delete").addEventListener("click", async (event) => {
      if (!editing || !confirmed(t("common.confirm_delete", { name: editing.name }))) return;
      const target = editing;
      await KQI.busy(event.currentTarget, null, async () => {
        try {
          await KQI.api("DELETE", "/data/" + target.id);
          setFlash("success", t("common.deleted", { name: target.name }));
          go("#/");
        } catch (err) {
          KQI.showError("data-edit-messages", err);
        }
      });
    });

    async function open(id, current) {
      showView("data-edit-view");
      KQI.clear(KQI.$("#data-edit-messages"));
      KQI.markFields(form, {});
      pending = [];
      existingNames = new Set();
      tags = [];
      editing = null;
      progress.classList.add("d-none");
      setProgress(0, 1);
      progress.classList.add("d-none");
      KQI.$("#data-files-card").classList.add("d-none");
      KQI.$("#data-info-card").classList.add("d-none");
      const runLink = KQI.$("#data-edit-run");
      runLink.classList.add("d-none");
      KQI.$("#data-delete").classList.add("d-none");
      if (id === null) {
        KQI.$("#data-edit-title").textContent = t("data.new");
        nameInput.value = "";
        memoInput.value = "";
        renderTags();
        renderPending();
        viewReady("data-new");
        nameInput.focus();
        return;
      }
      KQI.$("#data-edit-title").textContent = t("common.loading");
      const data = await KQI.api("GET", "/data/" + id);
      if (!current()) return;
      editing = data;
      KQI.$("#data-edit-title").textContent = t("data.edit", { name: data.name });
      nameInput.value = data.name;
      memoInput.value = data.memo || "";
      tags = (data.tags || []).slice();
      renderTags();
      if (canRunPreprocessing()) {
        runLink.href = KQI.data.urls.preprocessing + "#/run" + query({ data: data.id });
        runLink.classList.remove("d-none");
      }
      KQI.$("#data-delete").classList.remove("d-none");
      renderInfo(data);
      const done = carried;
      carried = null;
      await loadFiles(data.id);
      if (!current()) return;
      if (done && done.length) renderDone(done);
      viewReady("data-edit");
    }

    return { open: open };
  }

  // ================================================================= datasets
  KQI.pages.datasets = function (account) {
    if (noTenant(account, "datasets-list-view")) return null;
    const list = datasetListView();
    const editor = datasetEditView();
    return router(async (route, current) => {
      const [first, second] = route.parts;
      if (first === "new") return editor.open("new", null, current);
      if ((first === "edit" || first === "copy") && second) return editor.open(first, Number(second), current);
      return list.open(route.params, current);
    });
  };

  function datasetListView() {
    let params = new URLSearchParams();
    KQI.$("#datasets-search").addEventListener("submit", (event) => {
      event.preventDefault();
      go("#/" + query({ name: KQI.$("#datasets-search-name").value.trim(), perPage: params.get("perPage") }));
    });

    async function remove(button, item) {
      if (!confirmed(t("common.confirm_delete", { name: item.name }))) return;
      await KQI.busy(button, null, async () => {
        try {
          await KQI.api("DELETE", "/datasets/" + item.id);
          setFlash("success", t("common.deleted", { name: item.name }));
          go("#/" + query({ name: params.get("name") }));
        } catch (err) {
          KQI.showError("kqi-alerts", err);
        }
      });
    }

    async function open(routeParams, current) {
      params = routeParams;
      showView("datasets-list-view");
      const state = listState(params, { perPage: 20 });
      KQI.$("#datasets-search-name").value = params.get("name") || "";
      const result = await fetchPage("/datasets", { name: params.get("name"), perPage: state.perPage, page: state.page });
      if (!current()) return;
      const body = KQI.clear(KQI.$("#datasets-rows"));
      if (!result.items.length) body.appendChild(emptyRow(7, t("datasets.none")));
      for (const item of result.items) {
        body.appendChild(el("tr", { dataset: { id: String(item.id), name: item.name } },
          el("td", { text: String(item.id) }),
          el("td", {}, el("a", { href: "#/edit/" + item.id, class: "fw-semibold", text: item.name })),
          el("td", { class: "kqi-memo", text: orNone(item.memo) }),
          el("td", {}, item.isFlat ? el("span", { class: "badge text-bg-secondary", text: t("datasets.flat") }) : t("common.none")),
          el("td", { class: "text-nowrap", text: formatDate(item.createdAt) }),
          el("td", { text: orNone(item.createdBy) }),
          el("td", { class: "text-end text-nowrap" },
            el("a", { class: "btn btn-sm btn-outline-secondary me-1 kqi-edit", href: "#/edit/" + item.id, text: t("common.edit") }),
            el("a", { class: "btn btn-sm btn-outline-secondary me-1 kqi-copy", href: "#/copy/" + item.id, text: t("datasets.copy") }),
            el("button", { type: "button", class: "btn btn-sm btn-outline-danger kqi-delete", text: t("common.delete"),
              onclick: (event) => remove(event.currentTarget, item) }))));
      }
      renderPager(KQI.$("#datasets-pager"), state, result.total, (change) => {
        const next = new URLSearchParams(params);
        next.set("page", String(change.page));
        if (change.perPage) next.set("perPage", String(change.perPage));
        go("#/?" + next.toString());
      });
      viewReady("datasets-list");
    }

    return { open: open };
  }

  function datasetEditView() {
    const form = KQI.$("#dataset-form");
    const flatSwitch = KQI.$("#dataset-flat");
    const pool = KQI.$("#dataset-all-list");
    const areasBox = KQI.$("#dataset-areas");
    const filter = KQI.$("#dataset-data-filter");
    let mode = "new"; // new | edit | copy
    let source = null; // the dataset's details (edit, copy)
    let locked = false;
    let types = ["training", "validation", "testing"];
    const known = new Map(); // data id -> data (index)
    const placed = new Map(); // data id -> area name ("training", ... or "flat")
    let poolItems = []; // the data the "all data" list shows
    let filterTimer = null;

    function areaNames() {
      return flatSwitch.checked ? ["flat"] : types;
    }

    function areaLabel(area) {
      const key = "datasets.area_" + area;
      const text = t(key);
      return text === key ? area : text;
    }

    function dataItem(data, area) {
      const line = el("div", { class: "kqi-data-line" },
        el("span", { class: "badge text-bg-light border", text: String(data.id) }),
        el("span", { class: "kqi-data-name", text: data.name, title: data.name }));
      const item = el("li", {
        class: "kqi-data-item", draggable: locked ? null : "true",
        dataset: { id: String(data.id), name: data.name },
        title: data.memo || null,
      }, line, (data.tags || []).length ? el("div", { class: "kqi-data-tags" }, tagBadges(data.tags)) : null);
      if (!locked) {
        if (area) {
          line.appendChild(el("button", { type: "button", class: "btn-close kqi-unassign",
            "aria-label": t("datasets.remove_from", { name: data.name, area: areaLabel(area) }),
            onclick: () => { placed.delete(data.id); render(); } }));
        } else {
          const select = el("select", { class: "form-select form-select-sm kqi-assign", "aria-label": t("datasets.add_to", { name: data.name }),
            onchange: (event) => {
              if (event.target.value) {
                placed.set(data.id, event.target.value);
                render();
              }
            } },
          el("option", { value: "", text: t("datasets.add") }),
          areaNames().map((name) => el("option", { value: name, text: areaLabel(name) })));
          line.appendChild(select);
        }
        item.addEventListener("dragstart", (event) => {
          event.dataTransfer.setData("text/plain", String(data.id));
          event.dataTransfer.setData("application/x-kqi-data", String(data.id));
          event.dataTransfer.effectAllowed = "move";
          item.classList.add("kqi-dragging");
        });
        item.addEventListener("dragend", () => item.classList.remove("kqi-dragging"));
      }
      return item;
    }

    function dropTarget(list, area) {
      list.addEventListener("dragover", (event) => {
        if (locked) return;
        event.preventDefault();
        event.dataTransfer.dropEffect = "move";
        list.classList.add("kqi-over");
      });
      list.addEventListener("dragleave", (event) => {
        if (!list.contains(event.relatedTarget)) list.classList.remove("kqi-over");
      });
      list.addEventListener("drop", (event) => {
        event.preventDefault();
        list.classList.remove("kqi-over");
        if (locked) return;
        const id = Number(event.dataTransfer.getData("application/x-kqi-data") || event.dataTransfer.getData("text/plain"));
        if (!known.has(id)) return;
        if (area) placed.set(id, area);
        else placed.delete(id);
        render();
      });
    }

    dropTarget(pool, "");
    pool.setAttribute("data-empty", t("datasets.pool_empty"));

    function render() {
      // the areas
      KQI.clear(areasBox);
      const names = areaNames();
      for (const area of names) {
        const list = el("ul", { class: "list-unstyled mb-0 kqi-drop", id: "dataset-area-" + area, dataset: { area: area, empty: locked ? t("datasets.area_empty") : t("datasets.drop_here") } });
        dropTarget(list, area);
        const members = Array.from(placed.entries()).filter(([, a]) => a === area).map(([id]) => known.get(id)).filter(Boolean);
        members.sort((a, b) => a.id - b.id);
        members.forEach((data) => list.appendChild(dataItem(data, area)));
        areasBox.appendChild(el("div", { class: names.length === 1 ? "col-12" : "col-md-4" },
          el("section", { class: "card h-100 kqi-area" + (locked ? " kqi-area-locked" : ""), dataset: { area: area } },
            el("div", { class: "card-header d-flex align-items-center" },
              el("span", { class: "fw-semibold me-auto", text: areaLabel(area) }),
              el("span", { class: "badge text-bg-primary kqi-area-count", text: String(members.length) })),
            el("div", { class: "card-body p-2" }, list))));
      }
      // the pool: data not placed yet
      KQI.clear(pool);
      const free = poolItems.filter((d) => !placed.has(d.id));
      free.forEach((data) => pool.appendChild(dataItem(data, "")));
      KQI.$("#dataset-all-count").textContent = String(free.length);
      filter.disabled = locked;
    }

    async function loadPool() {
      const name = filter.value.trim();
      const items = (await KQI.api("GET", "/data" + query({ name: name, perPage: 200 }))) || [];
      for (const d of items) known.set(d.id, d);
      poolItems = items;
      render();
    }

    filter.addEventListener("input", () => {
      window.clearTimeout(filterTimer);
      filterTimer = window.setTimeout(() => loadPool().catch((err) => KQI.showError("dataset-messages", err)), 250);
    });

    flatSwitch.addEventListener("change", () => {
      // flat: everything in one area; back to areas: the data go to training
      for (const id of Array.from(placed.keys())) placed.set(id, flatSwitch.checked ? "flat" : "training");
      render();
    });

    function body() {
      const out = { name: KQI.$("#dataset-name").value.trim(), memo: KQI.$("#dataset-memo").value, isFlat: flatSwitch.checked };
      if (flatSwitch.checked) {
        out.flatEntries = Array.from(placed.keys()).sort((a, b) => a - b).map((id) => ({ id: id }));
      } else {
        out.entries = {};
        for (const area of types) {
          out.entries[area] = Array.from(placed.entries()).filter(([, a]) => a === area).map(([id]) => id)
            .sort((a, b) => a - b).map((id) => ({ id: id }));
        }
      }
      return out;
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const payload = body();
      await KQI.busy(KQI.$("#dataset-save"), t("common.saving"), async () => {
        try {
          let saved;
          if (mode === "edit" && locked) {
            saved = await KQI.api("PATCH", "/datasets/" + source.id, { name: payload.name, memo: payload.memo });
          } else if (mode === "edit") {
            saved = await KQI.api("PUT", "/datasets/" + source.id, payload);
          } else {
            saved = await KQI.api("POST", "/datasets", payload);
          }
          KQI.markFields(form, {});
          setFlash("success", t(mode === "edit" ? "common.updated" : "common.created", { name: saved.name }));
          go("#/");
        } catch (err) {
          KQI.markFields(form, err.errors);
          KQI.showError("dataset-messages", err);
        }
      });
    });

    KQI.$("#dataset-delete").addEventListener("click", async (event) => {
      if (!source || !confirmed(t("common.confirm_delete", { name: source.name }))) return;
      const target = source;
      await KQI.busy(event.currentTarget, null, async () => {
        try {
          await KQI.api("DELETE", "/datasets/" + target.id);
          setFlash("success", t("common.deleted", { name: target.name }));
          go("#/");
        } catch (err) {
          KQI.showError("dataset-messages", err);
        }
      });
    });

    async function open(how, id, current) {
      showView("dataset-edit-view");
      mode = how;
      source = null;
      locked = false;
      placed.clear();
      filter.value = "";
      KQI.clear(KQI.$("#dataset-messages"));
      KQI.markFields(form, {});
      KQI.$("#dataset-locked").classList.add("d-none");
      KQI.$("#dataset-copy").classList.add("d-none");
      KQI.$("#dataset-delete").classList.add("d-none");
      KQI.$("#dataset-edit-title").textContent = t("common.loading");
      if (KQI.has("GET /datatypes")) {
        const listed = ((await KQI.api("GET", "/datatypes")) || []).map((x) => x.name);
        // the guide's order: training, validation, testing
        const order = ["training", "validation", "testing"];
        types = listed.slice().sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
      }
      if (id !== null) {
        source = await KQI.api("GET", "/datasets/" + id);
        if (!current()) return;
        const add = (data, area) => {
          known.set(data.id, data);
          placed.set(data.id, area);
        };
        if (source.isFlat) (source.flatEntries || []).forEach((d) => add(d, "flat"));
        else for (const area of Object.keys(source.entries || {})) (source.entries[area] || []).forEach((d) => add(d, area));
      }
      flatSwitch.checked = !!(source && source.isFlat);
      if (how === "edit") {
        locked = !!source.isLocked;
        KQI.$("#dataset-edit-title").textContent = t("datasets.edit", { name: source.name });
        KQI.$("#dataset-name").value = source.name;
        KQI.$("#dataset-memo").value = source.memo || "";
        const copy = KQI.$("#dataset-copy");
        copy.href = "#/copy/" + source.id;
        copy.classList.remove("d-none");
        KQI.$("#dataset-delete").classList.toggle("d-none", locked);
        if (locked) {
          KQI.$("#dataset-locked").classList.remove("d-none");
          showLockUsers(source).catch(() => {
            KQI.append(KQI.clear(KQI.$("#dataset-lock-reasons")), (source.lockReasons || []).map((r) => el("li", { text: r })));
          });
        }
      } else if (how === "copy") {
        KQI.$("#dataset-edit-title").textContent = t("datasets.copy_of", { name: source.name });
        KQI.$("#dataset-name").value = t("datasets.copy_name", { name: source.name });
        KQI.$("#dataset-memo").value = source.memo || "";
      } else {
        KQI.$("#dataset-edit-title").textContent = t("datasets.new");
        KQI.$("#dataset-name").value = "";
        KQI.$("#dataset-memo").value = "";
      }
      flatSwitch.disabled = locked;
      KQI.$("#dataset-dnd-help").classList.toggle("d-none", locked);
      await loadPool();
      if (!current()) return;
      viewReady("dataset-" + how);
    }

    return { open: open };
  }

  // ============================================================ preprocessing
  KQI.pages.preprocessing = function (account) {
    if (noTenant(account, "prep-list-view")) return null;
    const list = prepListView();
    const editor = prepEditView();
    const runner = prepRunView();
    const histories = prepHistoryView();
    return router(async (route, current) => {
      const [first, second, third, fourth] = route.parts;
      if (first === "new") return editor.open(null, current);
      if (first === "edit" && second) return editor.open(Number(second), current);
      if (first === "run") return runner.open(route.params, current);
      if (first === "history" && second && third === "log" && fourth) {
        return histories.openLog(Number(second), Number(fourth), current);
      }
      if (first === "history" && second) return histories.open(Number(second), current);
      return list.open(route.params, current);
    });
  };

  function resources(p) {
    const parts = [];
    if (p.cpu !== null && p.cpu !== undefined) parts.push(t("prep.cpu_n", { n: p.cpu }));
    if (p.memory !== null && p.memory !== undefined) parts.push(t("prep.memory_n", { n: p.memory }));
    if (p.gpu !== null && p.gpu !== undefined) parts.push(t("prep.gpu_n", { n: p.gpu }));
    return parts.length ? parts.join(" / ") : t("common.none");
  }

  function prepListView() {
    let params = new URLSearchParams();
    if (canRunPreprocessing()) KQI.$("#prep-run").classList.remove("d-none");
    KQI.$("#prep-search").addEventListener("submit", (event) => {
      event.preventDefault();
      go("#/" + query({ name: KQI.$("#prep-search-name").value.trim(), perPage: params.get("perPage") }));
    });

    async function remove(button, item) {
      if (!confirmed(t("common.confirm_delete", { name: item.name }))) return;
      await KQI.busy(button, null, async () => {
        try {
          await KQI.api("DELETE", "/preprocessings/" + item.id);
          setFlash("success", t("common.deleted", { name: item.name }));
          go("#/");
        } catch (err) {
          KQI.showError("kqi-alerts", err);
        }
      });
    }

    async function open(routeParams, current) {
      params = routeParams;
      showView("prep-list-view");
      const state = listState(params, { perPage: 20 });
      KQI.$("#prep-search-name").value = params.get("name") || "";
      const result = await fetchPage("/preprocessings", { name: params.get("name"), perPage: state.perPage, page: state.page });
      if (!current()) return;
      const body = KQI.clear(KQI.$("#prep-rows"));
      if (!result.items.length) body.appendChild(emptyRow(7, t("prep.none")));
      for (const item of result.items) {
        body.appendChild(el("tr", { dataset: { id: String(item.id), name: item.name } },
          el("td", { text: String(item.id) }),
          el("td", {}, el("a", { href: "#/edit/" + item.id, class: "fw-semibold", text: item.name })),
          el("td", { class: "kqi-memo", text: orNone(item.memo) }),
          el("td", { class: "text-nowrap", text: resources(item) }),
          el("td", { class: "text-nowrap", text: formatDate(item.createdAt) }),
          el("td", { text: orNone(item.createdBy) }),
          el("td", { class: "text-end text-nowrap" },
            el("a", { class: "btn btn-sm btn-outline-secondary me-1 kqi-history", href: "#/history/" + item.id, text: t("prep.history") }),
            canRunPreprocessing() ? el("a", { class: "btn btn-sm btn-outline-primary me-1 kqi-run",
              href: "#/run" + query({ preprocessing: item.id }), text: t("prep.run_short") }) : null,
            el("a", { class: "btn btn-sm btn-outline-secondary me-1 kqi-edit", href: "#/edit/" + item.id, text: t("common.edit") }),
            el("button", { type: "button", class: "btn btn-sm btn-outline-danger kqi-delete", text: t("common.delete"),
              onclick: (event) => remove(event.currentTarget, item) }))));
      }
      renderPager(KQI.$("#prep-pager"), state, result.total, (change) => {
        const next = new URLSearchParams(params);
        next.set("page", String(change.page));
        if (change.perPage) next.set("perPage", String(change.perPage));
        go("#/?" + next.toString());
      });
      viewReady("prep-list");
    }

    return { open: open };
  }

  function prepEditView() {
    const form = KQI.$("#prep-form");
    const $ = (id) => KQI.$("#prep-" + id);
    let editing = null;
    let registries = [];
    let gits = [];

    async function optional(feature, path) {
      if (!KQI.has(feature)) return [];
      try {
        return (await KQI.api("GET", path)) || [];
      } catch (err) {
        return [];
      }
    }

    function fillSelect(select, items, chosen, emptyLabel) {
      KQI.clear(select);
      select.appendChild(el("option", { value: "", text: emptyLabel }));
      for (const item of items) {
        select.appendChild(el("option", { value: String(item.id), text: item.name, selected: String(item.id) === String(chosen) }));
      }
    }

    function splitRepository(text) {
      const cut = text.lastIndexOf("/");
      return cut > 0 ? { owner: text.slice(0, cut), repository: text.slice(cut + 1) } : { owner: "", repository: text };
    }

    async function loadRepositories() {
      const list = KQI.clear($("repository-options"));
      const gitId = $("git").value;
      if (!gitId) return;
      try {
        const repos = (await KQI.api("GET", "/git/" + encodeURIComponent(gitId) + "/repos")) || [];
        KQI.append(list, repos.map((r) => el("option", { value: r.fullName || (r.owner + "/" + r.name) })));
      } catch (err) {
        // free text stays possible when the server cannot be browsed
      }
    }

    async function loadBranches() {
      const list = KQI.clear($("branch-options"));
      const gitId = $("git").value;
      const repo = splitRepository($("repository").value.trim());
      if (!gitId || !repo.owner || !repo.repository) return;
      const base = "/git/" + encodeURIComponent(gitId) + "/repos/" + repo.owner.split("/").map(encodeURIComponent).join("/") +
        "/" + encodeURIComponent(repo.repository);
      try {
        const branches = (await KQI.api("GET", base + "/branches")) || [];
        KQI.append(list, branches.map((b) => el("option", { value: b.branchName })));
        const commits = (await KQI.api("GET", base + "/commits" + query({ branch: $("branch").value.trim() }))) || [];
        KQI.append(KQI.clear($("commit-options")), commits.map((c) => el("option", { value: c.commitId,
          label: (c.commitId || "").slice(0, 8) + " " + (c.comment || "").split("\n")[0] })));
      } catch (err) {
        // as above
      }
    }

    $("git").addEventListener("change", loadRepositories);
    $("repository").addEventListener("change", loadBranches);
    $("branch").addEventListener("change", loadBranches);

    function definitionBody() {
      const body = {
        name: $("name").value.trim(),
        memo: $("memo").value,
        entryPoint: $("entry-point").value.trim() || null,
        cpu: readNumber($("cpu")),
        memory: readNumber($("memory")),
        gpu: readNumber($("gpu")),
      };
      const image = $("image").value.trim();
      if (image || $("tag").value.trim()) {
        body.containerImage = { registryId: $("registry").value ? Number($("registry").value) : null,
          image: image || null, tag: $("tag").value.trim() || null };
      }
      const repository = $("repository").value.trim();
      if (repository) {
        const repo = splitRepository(repository);
        body.gitModel = { gitId: $("git").value ? Number($("git").value) : null, owner: repo.owner, repository: repo.repository,
          branch: $("branch").value.trim() || null, commitId: $("commit").value.trim() || null };
      }
      return body;
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = definitionBody();
      await KQI.busy($("save"), t("common.saving"), async () => {
        try {
          let saved;
          if (editing && editing.isLocked) {
            saved = await KQI.api("PATCH", "/preprocessings/" + editing.id,
              { name: body.name, memo: body.memo, cpu: body.cpu, memory: body.memory, gpu: body.gpu });
          } else if (editing) {
            saved = await KQI.api("PUT", "/preprocessings/" + editing.id, body);
          } else {
            saved = await KQI.api("POST", "/preprocessings", body);
          }
          KQI.markFields(form, {});
          setFlash("success", t(editing ? "common.updated" : "common.created", { name: saved.name }));
          go("#/edit/" + saved.id);
        } catch (err) {
          KQI.markFields(form, err.errors);
          KQI.showError("prep-edit-messages", err);
        }
      });
    });

    $("delete").addEventListener("click", async (event) => {
      if (!editing || !confirmed(t("common.confirm_delete", { name: editing.name }))) return;
      const target = editing;
      await KQI.busy(event.currentTarget, null, async () => {
        try {
          await KQI.api("DELETE", "/preprocessings/" + target.id);
          setFlash("success", t("common.deleted", { name: target.name }));
          go("#/");
        } catch (err) {
          KQI.showError("prep-edit-messages", err);
        }
      });
    });

    async function open(id, current) {
      showView("prep-edit-view");
      editing = null;
      KQI.clear($("edit-messages"));
      KQI.markFields(form, {});
      $("locked").classList.add("d-none");
      $("missing").classList.add("d-none");
      ["edit-history", "edit-run", "delete"].forEach((x) => $(x).classList.add("d-none"));
      $("edit-title").textContent = t("common.loading");
      [registries, gits] = await Promise.all([
        optional("GET /tenant/registry/endpoints", "/tenant/registry/endpoints"),
        optional("GET /tenant/git/endpoints", "/tenant/git/endpoints"),
      ]);
      const p = id === null ? null : await KQI.api("GET", "/preprocessings/" + id);
      if (!current()) return;
      editing = p;
      const image = (p && p.containerImage) || {};
      const model = (p && p.gitModel) || {};
      const defaultRegistry = (registries.find((r) => r.isDefault) || {}).id;
      const defaultGit = (gits.find((g) => g.isDefault) || {}).id;
      fillSelect($("registry"), registries, p ? image.registryId : defaultRegistry, t("prep.default_registry"));
      fillSelect($("git"), gits, p ? model.gitId : defaultGit, t("prep.default_git"));
      $("name").value = p ? p.name : "";
      $("memo").value = p ? p.memo || "" : "";
      $("entry-point").value = p ? p.entryPoint || "" : "";
      $("image").value = image.image || "";
      $("tag").value = image.tag || "";
      $("repository").value = model.repository ? (model.owner ? model.owner + "/" : "") + model.repository : "";
      $("branch").value = model.branch || "";
      $("commit").value = model.commitId || "";
      for (const key of ["cpu", "memory", "gpu"]) $(key).value = p && p[key] !== null && p[key] !== undefined ? String(p[key]) : "";
      const locked = !!(p && p.isLocked);
      KQI.$$(".kqi-definition", form).forEach((input) => { input.disabled = locked; });
      if (p) {
        $("edit-title").textContent = t("prep.edit", { name: p.name });
        $("edit-history").href = "#/history/" + p.id;
        $("edit-history").classList.remove("d-none");
        if (canRunPreprocessing()) {
          $("edit-run").href = "#/run" + query({ preprocessing: p.id });
          $("edit-run").classList.remove("d-none");
        }
        $("delete").classList.toggle("d-none", locked);
        $("locked").classList.toggle("d-none", !locked);
        if (p.missingToRun && p.missingToRun.length) {
          $("missing").textContent = t("prep.missing", { what: p.missingToRun.join(", ") });
          $("missing").classList.remove("d-none");
        }
      } else {
        $("edit-title").textContent = t("prep.new");
      }
      loadRepositories();
      if (p && model.repository) loadBranches();
      viewReady(p ? "prep-edit" : "prep-new");
    }

    return { open: open };
  }

  function prepRunView() {
    const form = KQI.$("#run-form");
    const select = KQI.$("#run-preprocessing");
    const chosenBox = KQI.$("#run-data-chosen");
    const search = KQI.$("#run-data-search");
    const results = KQI.$("#run-data-results");
    const envRows = KQI.$("#run-env-rows");
    // the preprocessings to run: the newest page, a name filter asking the server (never the whole list)
    const known = new Map(); // id -> preprocessing (its default resources)
    const choice = KQI.remoteSelect(select, {
      path: "/preprocessings", label: (p) => p.id + ": " + p.name, empty: t("prep.choose_preprocessing"),
      onItems: (items) => items.forEach((p) => known.set(String(p.id), p)), lazy: true,
    });
    const chosen = new Map(); // data id -> data
    let searchTimer = null;
    let cameFrom = null; // where "back" goes

    function renderChosen() {
      KQI.clear(chosenBox);
      if (!chosen.size) chosenBox.appendChild(el("span", { class: "small text-body-secondary", text: t("prep.no_data_chosen") }));
      for (const data of chosen.values()) {
        chosenBox.appendChild(el("span", { class: "badge rounded-pill text-bg-primary kqi-chosen", dataset: { id: String(data.id) } },
          el("span", { text: data.id + ": " + data.name }),
          el("button", { type: "button", class: "btn-close btn-close-white ms-1", "aria-label": t("prep.unchoose", { name: data.name }),
            onclick: () => { chosen.delete(data.id); renderChosen(); renderResults(lastResults); } })));
      }
    }

    let lastResults = [];
    function renderResults(items) {
      lastResults = items;
      KQI.clear(results);
      for (const data of items) {
        const has = chosen.has(data.id);
        results.appendChild(el("li", { class: "list-group-item list-group-item-action d-flex align-items-center gap-2 py-1",
          dataset: { id: String(data.id) } },
        el("span", { class: "badge text-bg-light border", text: String(data.id) }),
        el("span", { class: "me-auto", text: data.name }),
        tagBadges(data.tags),
        el("button", { type: "button", class: "btn btn-sm " + (has ? "btn-outline-secondary" : "btn-outline-primary") + " kqi-choose",
          text: has ? t("prep.unchoose_short") : t("prep.choose"),
          onclick: () => {
            if (chosen.has(data.id)) chosen.delete(data.id);
            else chosen.set(data.id, data);
            renderChosen();
            renderResults(lastResults);
          } })));
      }
    }

    async function findData() {
      const name = search.value.trim();
      const items = (await KQI.api("GET", "/data" + query({ name: name, perPage: 10 }))) || [];
      renderResults(items);
    }

    search.addEventListener("input", () => {
      window.clearTimeout(searchTimer);
      searchTimer = window.setTimeout(() => findData().catch((err) => KQI.showError("run-messages", err)), 250);
    });

    function envRow(name, value) {
      const row = el("div", { class: "input-group input-group-sm mb-2 kqi-env-row" },
        el("input", { type: "text", class: "form-control kqi-env-name", placeholder: t("prep.env_name"), "aria-label": t("prep.env_name"),
          value: name || "", autocomplete: "off" }),
        el("input", { type: "text", class: "form-control kqi-env-value", placeholder: t("prep.env_value"), "aria-label": t("prep.env_value"),
          value: value || "", autocomplete: "off" }),
        el("button", { type: "button", class: "btn btn-outline-secondary", text: t("upload.remove"),
          onclick: () => row.remove() }));
      envRows.appendChild(row);
      return row;
    }
    KQI.$("#run-env-add").addEventListener("click", () => KQI.$(".kqi-env-name", envRow()).focus());

    function applyDefaults() {
      const p = known.get(select.value);
      const info = KQI.$("#run-preprocessing-info");
      info.textContent = p ? resources(p) + (p.memo ? " — " + p.memo : "") : "";
      for (const key of ["cpu", "memory", "gpu"]) {
        KQI.$("#run-" + key).value = p && p[key] !== null && p[key] !== undefined ? String(p[key]) : "";
      }
    }
    select.addEventListener("change", applyDefaults);

    KQI.$("#run-back").addEventListener("click", () => {
      if (cameFrom) window.history.back();
      else go("#/");
    });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      KQI.clear(KQI.$("#run-messages"));
      KQI.markFields(form, {});
      if (!select.value) {
        KQI.markFields(form, { preprocessing: [t("prep.choose_preprocessing")] });
        return;
      }
      if (!chosen.size) {
        KQI.markFields(form, { dataIds: [t("prep.choose_data")] });
        return;
      }
      const options = {};
      for (const row of KQI.$$(".kqi-env-row", envRows)) {
        const name = KQI.$(".kqi-env-name", row).value.trim();
        if (name) options[name] = KQI.$(".kqi-env-value", row).value;
      }
      const preprocessId = Number(select.value);
      const body = {
        dataIds: Array.from(chosen.keys()),
        cpu: readNumber(KQI.$("#run-cpu")),
        memory: readNumber(KQI.$("#run-memory")),
        gpu: readNumber(KQI.$("#run-gpu")),
        partition: KQI.$("#run-partition").value || null,
        options: options,
      };
      await KQI.busy(KQI.$("#run-submit"), t("prep.starting"), async () => {
        try {
          const started = await KQI.api("POST", "/preprocessings/" + preprocessId + "/run", body);
          const name = (known.get(String(preprocessId)) || {}).name || String(preprocessId);
          setFlash("success", t("prep.started", { name: name, count: (started || []).length }));
          if (KQI.$("#run-open-history").checked) go("#/history/" + preprocessId);
          else if (cameFrom) window.history.back();
          else go("#/");
        } catch (err) {
          KQI.markFields(form, err.errors);
          KQI.showError("run-messages", err);
        }
      });
    });

    async function open(params, current) {
      showView("prep-run-view");
      cameFrom = document.referrer && window.history.length > 1 ? document.referrer : null;
      KQI.clear(KQI.$("#run-messages"));
      KQI.markFields(form, {});
      chosen.clear();
      KQI.clear(envRows);
      search.value = "";
      const ids = idList(params.get("data"));
      const wanted = params.get("preprocessing");
      select.value = "";
      choice.filter.value = "";
      const [, partitions, data, asked] = await Promise.all([
        choice.reload(""),
        KQI.has("GET /tenant/partitions") ? KQI.api("GET", "/tenant/partitions") : Promise.resolve([]),
        Promise.all(ids.map((id) => KQI.api("GET", "/data/" + id).catch(() => null))),
        // the preprocessing the address names, when it is not among the newest
        wanted ? KQI.api("GET", "/preprocessings/" + encodeURIComponent(wanted)).catch(() => null) : Promise.resolve(null),
      ]);
      if (!current()) return;
      if (asked) {
        known.set(String(asked.id), asked);
        if (!Array.from(select.options).some((o) => o.value === String(asked.id))) {
          select.appendChild(el("option", { value: String(asked.id), text: asked.id + ": " + asked.name }));
        }
        select.value = String(asked.id);
      }
      const partition = KQI.clear(KQI.$("#run-partition"));
      partition.appendChild(el("option", { value: "", text: t("prep.any_partition") }));
      for (const name of partitions || []) partition.appendChild(el("option", { value: String(name), text: String(name) }));
      data.filter(Boolean).forEach((d) => chosen.set(d.id, d));
      if (data.some((d) => !d)) KQI.show("run-messages", "warning", t("prep.data_missing"));
      applyDefaults();
      renderChosen();
      await findData();
      if (!current()) return;
      viewReady("prep-run");
      (select.value ? search : select).focus();
    }

    return { open: open };
  }

  function prepHistoryView() {
    async function halt(button, p, h, after) {
      if (!confirmed(t("prep.confirm_halt", { name: h.dataName || h.dataId }))) return;
      await KQI.busy(button, null, async () => {
        try {
          await KQI.api("POST", "/preprocessings/" + p + "/histories/" + h.dataId + "/halt");
          await after();
        } catch (err) {
          KQI.showError("kqi-alerts", err);
        }
      });
    }

    async function remove(button, p, h, after) {
      if (!confirmed(t("prep.confirm_delete_history", { name: h.dataName || h.dataId }))) return;
      await KQI.busy(button, null, async () => {
        try {
          await KQI.api("DELETE", "/preprocessings/" + p + "/histories/" + h.dataId);
          setFlash("success", t("prep.history_deleted", { name: h.dataName || h.dataId }));
          await after();
        } catch (err) {
          KQI.showError("kqi-alerts", err);
        }
      });
    }

    const outputNames = new Map(); // data id -> name of the data the runs produced

    async function learnOutputNames(histories) {
      const unknown = [];
      for (const h of histories) for (const id of h.outputDataIds || []) if (!outputNames.has(id)) unknown.push(id);
      await Promise.all(unknown.map(async (id) => {
        try {
          outputNames.set(id, (await KQI.api("GET", "/data/" + id)).name);
        } catch (err) {
          outputNames.set(id, null);
        }
      }));
    }

    function outputLinks(h) {
      const ids = h.outputDataIds || [];
      if (!ids.length) return t("common.none");
      return ids.map((id) => el("a", { class: "me-2 kqi-output", href: dataUrl(id), dataset: { id: String(id) },
        text: outputNames.get(id) ? id + ": " + outputNames.get(id) : "#" + id }));
    }

    async function open(preprocessId, current) {
      showView("prep-history-view");
      const p = await KQI.api("GET", "/preprocessings/" + preprocessId);
      if (!current()) return;
      KQI.$("#history-title").textContent = t("prep.history_of", { name: p.name });
      const runLink = KQI.$("#history-run");
      runLink.href = "#/run" + query({ preprocessing: p.id });
      runLink.classList.toggle("d-none", !canRunPreprocessing());
      KQI.$("#history-refresh").onclick = () => refresh();

      const pages = KQI.pagedList({ nav: KQI.$("#history-pager"), perPage: 20, load: loadPage });
      const refresh = () => pages.reload();

      async function loadPage(paging) {
        stopPolling();
        const result = await KQI.fetchPage("/preprocessings/" + preprocessId + "/histories", paging);
        const items = result.items;
        await learnOutputNames(items);
        if (!current()) return null;
        const body = KQI.clear(KQI.$("#history-rows"));
        if (!items.length) body.appendChild(emptyRow(6, t("prep.no_history")));
        for (const h of items) {
          const active = ACTIVE.indexOf(h.status) >= 0;
          body.appendChild(el("tr", { dataset: { dataId: String(h.dataId), status: h.status } },
            el("td", {}, el("a", { href: dataUrl(h.dataId), text: h.dataId + ": " + orNone(h.dataName) })),
            el("td", {}, statusBadge(h.status)),
            el("td", {}, outputLinks(h)),
            el("td", { class: "text-nowrap", text: formatDate(h.createdAt) }),
            el("td", { class: "small kqi-memo", text: orNone(h.conditionNote) }),
            el("td", { class: "text-end text-nowrap" },
              el("a", { class: "btn btn-sm btn-outline-secondary me-1 kqi-log", href: "#/history/" + preprocessId + "/log/" + h.dataId,
                text: t("prep.log") }),
              active ? el("button", { type: "button", class: "btn btn-sm btn-outline-warning me-1 kqi-halt", text: t("prep.halt"),
                onclick: (event) => halt(event.currentTarget, preprocessId, h, refresh) }) : null,
              active ? null : el("button", { type: "button", class: "btn btn-sm btn-outline-danger kqi-delete", text: t("common.delete"),
                onclick: (event) => remove(event.currentTarget, preprocessId, h, async () => { showFlash(); await refresh(); }) }))));
        }
        viewReady("prep-history");
        if (items.some((h) => ACTIVE.indexOf(h.status) >= 0)) {
          poller = window.setTimeout(() => refresh().catch((err) => KQI.showError("kqi-alerts", err)), POLL_MS);
        }
        return result.total;
      }
      await refresh();
    }

    async function openLog(preprocessId, dataId, current) {
      showView("prep-log-view");
      KQI.clear(KQI.$("#log-text"));
      const base = "/preprocessings/" + preprocessId + "/histories/" + dataId;
      KQI.$("#log-back").href = "#/history/" + preprocessId;
      let history = null;

      async function refresh() {
        stopPolling();
        const [h, log] = await Promise.all([KQI.api("GET", base), KQI.request("GET", base + "/log")]);
        await learnOutputNames([h]);
        if (!current()) return;
        history = h;
        KQI.$("#log-title").textContent = t("prep.log_of", { name: h.preprocessName, data: h.dataName || h.dataId });
        const info = KQI.clear(KQI.$("#log-info"));
        const row = (label, value) => {
          info.appendChild(el("dt", { class: "col-sm-2", text: label }));
          info.appendChild(el("dd", { class: "col-sm-10 mb-1" }, value));
        };
        row(t("prep.status"), statusBadge(h.status));
        row(t("prep.input_data"), el("a", { href: dataUrl(h.dataId), text: h.dataId + ": " + orNone(h.dataName) }));
        row(t("prep.output_data"), outputLinks(h));
        row(t("data.created_at"), formatDate(h.createdAt));
        if (h.conditionNote) row(t("prep.note"), h.conditionNote);
        const text = KQI.$("#log-text");
        const atEnd = text.scrollTop + text.clientHeight >= text.scrollHeight - 4;
        text.textContent = log.text || t("prep.log_empty");
        if (atEnd) text.scrollTop = text.scrollHeight;
        KQI.$("#log-updated").textContent = t("prep.updated_at", { time: KQI.formatDate(new Date(), "time") });
        const active = ACTIVE.indexOf(h.status) >= 0;
        KQI.$("#log-halt").classList.toggle("d-none", !active);
        if (window.KQIShell && h.jobId) {  // the web shell (shell.js)
          window.KQIShell.show({ slot: KQI.$("#log-halt").parentNode, after: KQI.$("#log-info"), base: base,
            jobId: h.jobId, kind: "preprocessing", running: h.status === "Running" });
        }
        KQI.$("#log-delete").classList.toggle("d-none", active);
        document.body.setAttribute("data-kqi-log-status", h.status);
        viewReady("prep-log");
        if (active) poller = window.setTimeout(() => refresh().catch((err) => KQI.showError("kqi-alerts", err)), POLL_MS);
      }

      KQI.$("#log-refresh").onclick = () => refresh().catch((err) => KQI.showError("kqi-alerts", err));
      KQI.$("#log-halt").onclick = (event) => history && halt(event.currentTarget, preprocessId, history, refresh);
      KQI.$("#log-delete").onclick = (event) => history && remove(event.currentTarget, preprocessId, history,
        async () => go("#/history/" + preprocessId));
      await refresh();
    }

    return { open: open, openLog: openLog };
  }
})();
