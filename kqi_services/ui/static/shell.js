/* The web shell of a job's detail page: a "Shell" button while the job runs, a terminal
 * (xterm.js + its fit add-on, loaded on first use from static/xterm/, where setup.sh's npm
 * packages are served) over the WebSocket GET <api>/<job>/shell (terminado messages:
 * ["stdin", text], ["set_size", rows, cols] out; ["stdout", text], ["disconnect"] in), and,
 * for the tenant's administrators, the shells opened into this job (GET /tenant/shell-sessions).
 *
 * The pages call KQIShell.show({slot, after, base, jobId, kind, running}) whenever they render
 * a job: slot is where the button goes (before its first child), after the element the
 * terminal and the sessions card follow.
 */
(function () {
  "use strict";
  const KQI = window.KQI;
  const t = (key, params) => KQI.t(key, params);
  const el = KQI.el;
  const script = document.currentScript;
  const STATIC = script ? script.src.replace(/shell\.js(\?.*)?$/, "") : "";
  let xtermLoading = null;

  function load(tag, attrs) {
    return new Promise((resolve, reject) => {
      const node = document.createElement(tag);
      Object.assign(node, attrs);
      node.onload = resolve;
      node.onerror = () => reject(new Error(t("shell.no_xterm")));
      document.head.appendChild(node);
    });
  }

  function loadXterm() {
    if (!xtermLoading) {
      xtermLoading = Promise.all([
        load("link", { rel: "stylesheet", href: STATIC + "xterm/xterm/css/xterm.css" }),
        load("script", { src: STATIC + "xterm/xterm/lib/xterm.js" }),
      ]).then(() => load("script", { src: STATIC + "xterm/addon-fit/lib/addon-fit.js" }));
      xtermLoading.catch(() => { xtermLoading = null; });
    }
    return xtermLoading;
  }

  const state = { job: null, socket: null, term: null, fit: null, sessionsKey: null, onResize: null };

  function ui(opts) {
    let button = document.getElementById("job-shell-open");
    if (!button) {
      button = el("button", { type: "button", class: "btn btn-outline-dark d-none", id: "job-shell-open",
        text: t("shell.open") });
      button.addEventListener("click", () => open().catch((err) => message("danger", err.message || String(err))));
      opts.slot.insertBefore(button, opts.slot.firstChild);
    }
    let card = document.getElementById("job-shell");
    if (!card) {
      card = el("section", { class: "card mb-3 d-none", id: "job-shell" },
        el("div", { class: "card-header d-flex align-items-center gap-2" },
          el("span", { class: "fw-semibold", text: t("shell.title") }),
          el("span", { class: "small text-body-secondary", id: "job-shell-state" }),
          el("button", { type: "button", class: "btn btn-sm btn-outline-secondary ms-auto", id: "job-shell-close",
            text: t("shell.close"), onclick: () => close() })),
        el("div", { class: "card-body p-1 bg-black" },
          el("div", { id: "job-shell-terminal", style: "height: 24rem;" })));
      const sessions = el("section", { class: "card mb-3 d-none", id: "job-shell-sessions" },
        el("div", { class: "card-header fw-semibold", text: t("shell.sessions") }),
        el("div", { class: "card-body" },
          el("table", { class: "table table-sm align-middle mb-0" },
            el("thead", {}, el("tr", {},
              el("th", { text: t("shell.user") }), el("th", { text: t("shell.opened_at") }),
              el("th", { text: t("shell.closed_at") }), el("th", { text: t("shell.close_reason") }))),
            el("tbody", { id: "job-shell-session-rows" })),
          el("nav", { class: "kqi-pager mt-2", id: "job-shell-session-pager" })));
      opts.after.after(card);
      card.after(sessions);
    }
    return { button, card };
  }

  function message(kind, text) {
    const where = document.getElementById("job-shell-state");
    if (where) where.textContent = text;
    if (kind === "danger") KQI.show("kqi-alerts", kind, text);
  }

  function show(opts) {
    const { button } = ui(opts);
    const same = state.job && state.job.base === opts.base;
    state.job = opts;
    button.classList.toggle("d-none", !opts.running);
    if (!opts.running && state.socket && same) message("secondary", t("shell.job_ended"));
    if (!same && state.socket) close();
    sessions(opts, false);
  }

  async function sessions(opts, force) {
    const card = document.getElementById("job-shell-sessions");
    if (!card || !KQI.isTenantAdmin(KQI.account) || !KQI.has("GET /tenant/shell-sessions")) return;
    const key = opts.kind + "/" + opts.jobId;
    if (!force && state.sessionsKey === key) return;
    state.sessionsKey = key;
    if (!state.sessionList || state.sessionList.key !== key) {
      const list = KQI.pagedList({
        nav: document.getElementById("job-shell-session-pager"),
        perPage: 10,
        load: async (paging) => {
          const result = await KQI.fetchPage("/tenant/shell-sessions",
            { jobId: opts.jobId, kind: opts.kind, ...paging }).catch(() => null);
          if (!result) return null;
          card.classList.remove("d-none");
          const body = KQI.clear(document.getElementById("job-shell-session-rows"));
          if (!result.items.length) {
            body.appendChild(el("tr", {}, el("td", { colspan: "4", class: "text-body-secondary", text: t("shell.no_sessions") })));
          }
          for (const s of result.items) {
            body.appendChild(el("tr", { class: "kqi-shell-session", dataset: { id: s.id } },
              el("td", { text: s.userName }),
              el("td", { text: s.openedAt ? KQI.formatDate(s.openedAt) : "" }),
              el("td", { text: s.closedAt ? KQI.formatDate(s.closedAt) : t("shell.open_now") }),
              el("td", { text: s.closeReason || "" })));
          }
          return result.total;
        },
      });
      state.sessionList = { key: key, list: list };
    }
    await state.sessionList.list.reload();
  }

  async function open() {
    const job = state.job;
    if (!job || state.socket) return;
    const card = document.getElementById("job-shell");
    card.classList.remove("d-none");
    message("secondary", t("shell.connecting"));
    await loadXterm();
    const holder = KQI.clear(document.getElementById("job-shell-terminal"));
    const term = new window.Terminal({ cursorBlink: true, convertEol: false, fontSize: 14, scrollback: 5000 });
    const fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(holder);
    fit.fit();
    state.term = term;
    state.fit = fit;
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + KQI.data.apiBase + job.base +
      "/shell?rows=" + term.rows + "&cols=" + term.cols;
    const socket = new WebSocket(url);
    state.socket = socket;
    const send = (...msg) => socket.readyState === WebSocket.OPEN && socket.send(JSON.stringify(msg));
    socket.onopen = () => {
      message("success", t("shell.connected"));
      document.body.setAttribute("data-kqi-shell", "open");
      send("set_size", term.rows, term.cols);
      term.focus();
      sessions(job, true);
    };
    socket.onmessage = (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      if (msg[0] === "stdout") term.write(msg[1]);
      else if (msg[0] === "disconnect") socket.close();
    };
    socket.onclose = (event) => {
      if (state.socket === socket) state.socket = null;
      document.body.setAttribute("data-kqi-shell", "closed");
      message("secondary", event.code === 1000 || event.code === 1005 ? t("shell.closed")
        : t("shell.refused", { code: event.code }));
      sessions(job, true);
    };
    term.onData((data) => send("stdin", data));
    term.onResize((size) => send("set_size", size.rows, size.cols));
    if (!state.onResize) {
      state.onResize = () => { if (state.fit && state.term) state.fit.fit(); };
      window.addEventListener("resize", state.onResize);
    }
  }

  function close() {
    if (state.socket) {
      try { state.socket.send(JSON.stringify(["disconnect"])); } catch (e) { /* closed already */ }
      state.socket.close();
      state.socket = null;
    }
    if (state.term) {
      state.term.dispose();
      state.term = null;
      state.fit = null;
    }
    const card = document.getElementById("job-shell");
    if (card) card.classList.add("d-none");
  }

  window.KQIShell = { show: show, open: open, close: close };
})();
