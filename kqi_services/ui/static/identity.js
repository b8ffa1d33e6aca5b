/* Issue 16: the personal access token tab of the user settings, and the directory sync on the
 * system administrator's users screen. Loaded after kqi.js by settings.html and users.html. */
(function () {
  "use strict";
  const KQI = window.KQI;
  const t = KQI.t;

  function serverUrl() {
    return window.location.origin + KQI.data.servicePrefix.replace(/\/$/, "");
  }

  function cliCommands(token) {
    const config = JSON.stringify({ server: serverUrl(), token: token });
    return "mkdir -p ~/.kqi && cat > ~/.kqi/config.json <<'EOF'\n" + config + "\nEOF\n" +
      "chmod 600 ~/.kqi/config.json\nkqi account get\nkqi data list";
  }

  function sdkSnippet(token) {
    return "from kamonohashi.op import rest\n" +
      "configuration = rest.Configuration()\n" +
      "configuration.host = " + JSON.stringify(serverUrl()) + "\n" +
      "configuration.api_key['Authorization'] = " + JSON.stringify(token) + "\n" +
      "configuration.api_key_prefix['Authorization'] = 'Bearer'\n" +
      "api = rest.DataApi(rest.ApiClient(configuration))\n" +
      "print(api.list_data())";
  }

  // --------------------------------------------------------- access tokens (user settings)
  async function loadTokens() {
    const body = KQI.clear(KQI.$("#tokens-rows"));
    let tokens;
    try {
      tokens = await KQI.api("GET", "/account/tokens");
    } catch (err) {
      KQI.showError("tokens-messages", err);
      return;
    }
    if (!tokens.length) {
      body.appendChild(KQI.el("tr", {}, KQI.el("td", { colspan: 6, class: "text-body-secondary", text: t("tokens.none") })));
      return;
    }
    for (const token of tokens) {
      const revoke = KQI.el("button", { type: "button", class: "btn btn-sm btn-outline-danger kqi-token-revoke", text: t("tokens.revoke") });
      revoke.addEventListener("click", () => {
        if (!window.confirm(t("tokens.revoke_confirm"))) return;
        KQI.busy(revoke, null, async () => {
          try {
            await KQI.api("DELETE", "/account/tokens/" + encodeURIComponent(token.id));
            KQI.show("tokens-messages", "success", t("tokens.revoked"));
            await loadTokens();
          } catch (err) {
            KQI.showError("tokens-messages", err);
          }
        });
      });
      body.appendChild(KQI.el("tr", { dataset: { tokenId: token.id } },
        KQI.el("td", { text: token.note || t("common.none") }),
        KQI.el("td", { text: token.tenantId === null ? token.tenantName + " " + t("tokens.deleted_tenant") : token.tenantName }),
        KQI.el("td", { text: KQI.formatDate(token.createdAt) }),
        KQI.el("td", { text: token.lastUsedAt ? KQI.formatDate(token.lastUsedAt) : t("tokens.never_used") }),
        KQI.el("td", { text: KQI.formatDate(token.expiresAt) }),
        KQI.el("td", { class: "text-end" }, revoke)));
    }
  }

  function showCreated(created) {
    const box = KQI.clear(KQI.$("#tokens-created"));
    const value = KQI.el("input", { type: "text", class: "form-control font-monospace", id: "tokens-created-value",
      readonly: true, value: created.token, "aria-label": t("tokens.created_once") });
    const copy = KQI.el("button", { type: "button", class: "btn btn-outline-secondary", text: t("tokens.copy") });
    copy.addEventListener("click", async () => {
      value.select();
      try {
        await navigator.clipboard.writeText(created.token);
        copy.textContent = t("tokens.copied");
      } catch (e) {
        document.execCommand("copy");
      }
    });
    box.appendChild(KQI.el("div", { class: "alert alert-success" },
      KQI.el("p", { class: "fw-semibold", text: t("tokens.created_once") }),
      KQI.el("div", { class: "input-group mb-3" }, value, copy),
      KQI.el("p", { class: "mb-1", text: t("tokens.use") }),
      KQI.el("pre", { class: "kqi-token-commands bg-body-tertiary p-2 small", id: "tokens-cli", text: cliCommands(created.token) }),
      KQI.el("p", { class: "mb-1", text: t("tokens.use_sdk") }),
      KQI.el("pre", { class: "bg-body-tertiary p-2 small mb-0", text: sdkSnippet(created.token) })));
  }

  async function createToken(event) {
    event.preventDefault();
    const form = event.target;
    const body = {
      tenantId: Number(KQI.$("#tokens-tenant").value),
      note: KQI.$("#tokens-note").value.trim() || null,
      expiresInDays: Number(KQI.$("#tokens-expires").value),
    };
    await KQI.busy(KQI.$("#tokens-create"), null, async () => {
      try {
        const created = await KQI.api("POST", "/account/tokens", body);
        KQI.markFields(form, {});
        KQI.clear(KQI.$("#tokens-messages"));
        showCreated(created);
        form.reset();
        KQI.$("#tokens-expires").value = "90";
        await loadTokens();
      } catch (err) {
        KQI.markFields(form, err.errors);
        KQI.showError("tokens-messages", err);
      }
    });
  }

  function startTokens(account) {
    const select = KQI.clear(KQI.$("#tokens-tenant"));
    for (const tenant of account.tenants || []) {
      select.appendChild(KQI.el("option", { value: tenant.id, text: tenant.displayName || tenant.name,
        selected: account.selectedTenant && account.selectedTenant.id === tenant.id }));
    }
    if (!(account.tenants || []).length) {
      KQI.show("tokens-messages", "warning", t("common.no_tenant"));
      KQI.$("#tokens-create").disabled = true;
    }
    KQI.$("#tokens-form").addEventListener("submit", createToken);
    return loadTokens();
  }

  if (KQI.pages.settings) {
    const settings = KQI.pages.settings;
    KQI.pages.settings = async function (account) {
      await settings(account);
      if (KQI.$("#tokens-form")) await startTokens(account);
    };
  }

  // ------------------------------------------------------ directory sync (users screen)
  function list(items) {
    return (items || []).join(", ");
  }

  async function runSync(button) {
    await KQI.busy(button, null, async () => {
      const out = KQI.clear(KQI.$("#sync-result"));
      try {
        const answer = await KQI.api("POST", "/admin/directory/sync");
        const changed = answer.users.filter((u) => u.added.length || u.removed.length || u.adminAdded.length ||
          u.adminRemoved.length || u.stillRunning.length || u.missingTenants.length);
        KQI.show("sync-messages", "success", t("sync.done", { count: answer.users.length }));
        document.dispatchEvent(new Event("kqi:reload-list")); // the users list below: their tenants and names
        if (!changed.length) {
          out.appendChild(KQI.el("p", { class: "text-body-secondary", text: t("sync.no_changes") }));
          return;
        }
        const rows = changed.map((u) => KQI.el("tr", { dataset: { user: u.name } },
          KQI.el("td", {}, KQI.el("span", { class: "fw-semibold", text: u.name }), " ",
            KQI.el("small", { class: "text-body-secondary", text: u.displayName || "" })),
          KQI.el("td", { text: list(u.added) }),
          KQI.el("td", { text: list(u.removed) }),
          KQI.el("td", { text: [u.adminAdded.length ? "+" + list(u.adminAdded) : "", u.adminRemoved.length ? "-" + list(u.adminRemoved) : ""].join(" ").trim() }),
          KQI.el("td", {}, u.stillRunning.map((r) => KQI.el("div", { class: "kqi-sync-running",
            text: r.tenantName + ": " + r.kind + " " + r.id + " " + r.name + " (" + r.status + ")" })),
          u.missingTenants.length ? KQI.el("div", { class: "text-warning", text: t("sync.missing", { tenants: list(u.missingTenants) }) }) : null)));
        out.appendChild(KQI.el("div", { class: "table-responsive" }, KQI.el("table", { class: "table table-sm align-middle", id: "sync-table" },
          KQI.el("thead", {}, KQI.el("tr", {}, ["sync.user", "sync.joined", "sync.left", "sync.admin", "sync.running"]
            .map((key) => KQI.el("th", { text: t(key) })))),
          KQI.el("tbody", {}, rows))));
      } catch (err) {
        KQI.showError("sync-messages", err);
      }
    });
  }

  // ------------- what still runs in tenants its owner left (users screen, next to Sync now)
  async function loadOrphans(button) {
    await KQI.busy(button, null, async () => {
      const out = KQI.clear(KQI.$("#orphans-result"));
      KQI.clear(KQI.$("#orphans-messages"));
      try {
        const items = (await KQI.api("GET", "/admin/directory/orphans")).items;
        if (!items.length) {
          out.appendChild(KQI.el("p", { class: "text-body-secondary mb-0", text: t("orphans.none") }));
          return;
        }
        const rows = items.map((o) => KQI.el("tr", { dataset: { owner: o.owner, kind: o.kind, id: String(o.id) } },
          KQI.el("td", { text: o.tenantName }),
          KQI.el("td", { text: o.owner + (o.ownerExists ? "" : " " + t("orphans.owner_gone")) }),
          KQI.el("td", { text: o.kind }),
          KQI.el("td", { text: String(o.id) }),
          KQI.el("td", { text: o.name }),
          KQI.el("td", { text: o.status })));
        out.appendChild(KQI.el("div", { class: "table-responsive" }, KQI.el("table", { class: "table table-sm align-middle mb-0", id: "orphans-table" },
          KQI.el("thead", {}, KQI.el("tr", {}, ["orphans.tenant", "orphans.owner", "orphans.kind", "orphans.id", "orphans.name", "orphans.status"]
            .map((key) => KQI.el("th", { text: t(key) })))),
          KQI.el("tbody", {}, rows))));
      } catch (err) {
        KQI.showError("orphans-messages", err);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const refresh = document.getElementById("orphans-refresh");
    if (refresh) {
      refresh.addEventListener("click", () => loadOrphans(refresh));
      document.addEventListener("kqi:reload-list", () => loadOrphans(refresh)); // after a sync
      loadOrphans(refresh);
    }
    const button = document.getElementById("sync-run");
    if (!button) return;
    button.addEventListener("click", () => runSync(button));
    try { // shown only where the hub's authenticator reads a directory (LDAP)
      if ((await KQI.api("GET", "/admin/directory/sync")).available) KQI.$("#sync-card").classList.remove("d-none");
    } catch (err) {
      KQI.showError("kqi-alerts", err);
    }
  });
})();
