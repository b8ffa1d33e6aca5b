/* KQI web UI: the job environment (variables and network mode of every job and notebook
 * container): the system administrator's screen (the system setting and any tenant's
 * override) and the tenant administrator's tenant settings (the current tenant's override).
 *
 * As in kqi.js, data only ever reaches the page through textContent and form values.
 */
"use strict";

(function () {
  const KQI = window.KQI;
  const t = KQI.t;
  const el = KQI.el;
  const MODES = ["host", "bridge", "none"];

  function inputError(message) {
    return new KQI.ApiError(400, { detail: message, errors: { env: [message] } });
  }

  /* The editor of one setting: a network mode and name/value rows. `override`: the network
   * mode may be left to the system (null). Returns {node, set(setting), read() -> body}. */
  function envEditor(prefix, override) {
    const select = el("select", { class: "form-select kqi-jobenv-network", id: prefix + "-network" });
    const rows = el("tbody", { id: prefix + "-rows" });
    const empty = el("tr", { class: "kqi-jobenv-empty" },
      el("td", { colspan: "3", class: "text-body-secondary", text: t("jobenv.no_variables") }));
    rows.appendChild(empty);

    function refreshEmpty() {
      empty.classList.toggle("d-none", KQI.$$("tr.kqi-jobenv-row", rows).length > 0);
    }

    function addRow(name, value) {
      const row = el("tr", { class: "kqi-jobenv-row" });
      KQI.append(row, [
        el("td", {}, el("input", {
          type: "text", class: "form-control form-control-sm font-monospace kqi-jobenv-name", value: name,
          autocomplete: "off", spellcheck: "false", "aria-label": t("jobenv.var_name"),
        })),
        el("td", {}, el("input", {
          type: "text", class: "form-control form-control-sm font-monospace kqi-jobenv-value", value: value,
          autocomplete: "off", spellcheck: "false", "aria-label": t("jobenv.var_value"),
        })),
        el("td", { class: "text-end" }, el("button", {
          type: "button", class: "btn btn-sm btn-outline-danger kqi-jobenv-remove", text: t("jobenv.remove"),
          onclick: () => { row.remove(); refreshEmpty(); },
        })),
      ]);
      rows.appendChild(row);
      refreshEmpty();
      return row;
    }

    const node = el("div", { class: "kqi-jobenv", id: prefix },
      el("div", { class: "mb-3 col-lg-6" },
        el("label", { class: "form-label", for: prefix + "-network", text: t("jobenv.network") }),
        select,
        el("div", { class: "invalid-feedback", dataset: { field: "networkMode" } }),
        el("div", { class: "form-text", text: t("jobenv.network_help") })),
      el("div", { class: "form-label", text: t("jobenv.variables") }),
      el("div", { class: "table-responsive" },
        el("table", { class: "table table-sm align-middle mb-1" },
          el("thead", {}, el("tr", {},
            el("th", { scope: "col", class: "w-25", text: t("jobenv.var_name") }),
            el("th", { scope: "col", text: t("jobenv.var_value") }),
            el("th", { scope: "col" }))),
          rows)),
      el("div", {}, el("div", { class: "invalid-feedback d-block", dataset: { field: "env" } })),
      el("button", {
        type: "button", class: "btn btn-sm btn-outline-secondary mt-1", id: prefix + "-add", text: t("jobenv.add"),
        onclick: () => KQI.$("input", addRow("", "")).focus(),
      }),
      el("div", { class: "form-text", text: t("jobenv.names_help") }));

    return {
      node: node,
      set(setting) {
        KQI.clear(select);
        if (override) select.appendChild(el("option", { value: "", text: t("jobenv.network_inherit") }));
        for (const mode of MODES) {
          select.appendChild(el("option", { value: mode, text: t("jobenv.network_" + mode) }));
        }
        select.value = setting.networkMode || "";
        KQI.$$("tr.kqi-jobenv-row", rows).forEach((row) => row.remove());
        for (const name of Object.keys(setting.env || {})) addRow(name, setting.env[name]);
        refreshEmpty();
      },
      read() {
        const env = {};
        for (const row of KQI.$$("tr.kqi-jobenv-row", rows)) {
          const name = KQI.$(".kqi-jobenv-name", row).value.trim();
          const value = KQI.$(".kqi-jobenv-value", row).value;
          if (!name && !value) continue;
          if (!name) throw inputError(t("jobenv.no_name"));
          if (Object.prototype.hasOwnProperty.call(env, name)) throw inputError(t("jobenv.duplicate", { name: name }));
          env[name] = value;
        }
        return { env: env, networkMode: select.value || null };
      },
    };
  }

  function renderEffective(box, effective) {
    KQI.clear(box);
    const names = Object.keys(effective.env || {});
    box.appendChild(el("p", { class: "mb-1" },
      el("span", { class: "text-body-secondary", text: t("jobenv.network") + ": " }),
      el("code", { class: "kqi-jobenv-effective-network", text: effective.networkMode })));
    if (!names.length) {
      box.appendChild(el("p", { class: "text-body-secondary mb-0", text: t("jobenv.no_variables") }));
      return;
    }
    box.appendChild(el("table", { class: "table table-sm mb-0" }, el("tbody", {},
      names.map((name) => el("tr", { dataset: { name: name } },
        el("td", { class: "w-25" }, el("code", { text: name })),
        el("td", {}, el("code", { class: "text-break", text: effective.env[name] })))))));
  }

  /* A form that loads a setting into an editor and saves it: the ids start with `prefix`
   * (<prefix>-form, -editor, -messages, -save, and -effective for overrides). */
  function settingForm(prefix, override, load, save) {
    const editor = envEditor(prefix + "-env", override);
    const form = KQI.$("#" + prefix + "-form");
    const effective = KQI.$("#" + prefix + "-effective");
    KQI.clear(KQI.$("#" + prefix + "-editor")).appendChild(editor.node);

    function show(setting) {
      editor.set(setting);
      if (effective && setting.effective) renderEffective(effective, setting.effective);
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      await KQI.busy(KQI.$("#" + prefix + "-save"), t("common.saving"), async () => {
        try {
          const saved = await save(editor.read());
          KQI.markFields(form, {});
          show(saved);
          KQI.show(prefix + "-messages", "success", t("common.saved"));
        } catch (err) {
          KQI.markFields(form, err.errors);
          KQI.showError(prefix + "-messages", err);
        }
      });
    });

    return {
      async reload() {
        KQI.clear(KQI.$("#" + prefix + "-messages"));
        KQI.markFields(form, {});
        try {
          show(await load());
        } catch (err) {
          KQI.showError(prefix + "-messages", err);
        }
      },
    };
  }

  // --------------------------------------------- system administrator's screen
  KQI.pages.jobenv = async function () {
    const base = "/admin/job-environment";
    const system = settingForm("jobenv-system", false,
      () => KQI.api("GET", base), (body) => KQI.api("PUT", base, body));
    await system.reload();

    const section = KQI.$("#jobenv-tenant");
    if (!KQI.has("GET /admin/tenants") || !KQI.has("GET /admin/tenants/{}/job-environment")) {
      section.classList.add("d-none");
      return;
    }
    const choice = KQI.$("#jobenv-tenant-select");
    const path = () => "/admin/tenants/" + encodeURIComponent(choice.value) + "/job-environment";
    const tenant = settingForm("jobenv-tenant", true,
      () => KQI.api("GET", path()), (body) => KQI.api("PUT", path(), body));
    const tenants = (await KQI.fetchChoices("/admin/tenants")).items;
    choice.appendChild(el("option", { value: "", text: t("jobenv.choose_tenant") }));
    for (const item of tenants) {
      choice.appendChild(el("option", { value: String(item.id), text: (item.displayName || item.name) + " (" + item.name + ")" }));
    }
    choice.addEventListener("change", async () => {
      const form = KQI.$("#jobenv-tenant-form");
      form.classList.toggle("d-none", !choice.value);
      if (choice.value) await tenant.reload();
    });
  };

  // ------------------------------------------ tenant administrator's settings
  KQI.pages.tenant_settings = async function (account) {
    if (!KQI.isTenantAdmin(account)) {
      KQI.show("kqi-alerts", "warning", t("common.need_tenant_admin"));
      KQI.$("#tenant-jobenv").classList.add("d-none");
      return;
    }
    const current = account.selectedTenant;
    KQI.$("h1").textContent = t("tenant_settings.of", { tenant: current.displayName || current.name });
    const base = "/tenant/job-environment";
    const form = settingForm("tenant-jobenv", true,
      () => KQI.api("GET", base), (body) => KQI.api("PUT", base, body));
    await form.reload();
  };
})();
