// The Analysis tab: Neighbourhood (click a home), Needs (deficits by norms) and Siting (where to build),
// each an OGC API Processes execution; long processes run as jobs whose progress is polled.
import { request, escapeHtml, toast } from "./api.js";
import { t, currentLang } from "./i18n.js";
import { formatValue } from "./layers.js";

const NEEDS = ["kindergarten", "school", "polyclinic", "pharmacy"];

export async function runProcess(id, inputs, onProgress = () => {}) {
  const { data, status, headers } = await request(`/processes/${id}/execution`, {
    method: "POST", body: { inputs, response: "document" } });
  if (status !== 201) return data;
  // a job: poll its status until it ends, then fetch the results document
  const location = headers.get("Location");
  for (;;) {
    await new Promise((r) => setTimeout(r, 700));
    const { data: job } = await request(location);
    onProgress(job.progress ?? 0, job.message || job.status);
    if (job.status === "successful") return (await request(`${location}/results`)).data;
    if (job.status === "failed" || job.status === "dismissed") throw new Error(job.message || job.status);
  }
}

const minutes = (s) => (s === null || s === undefined ? "—" : `${(s / 60).toFixed(1)} ${t("an.min")}`);

function typeName(app, code) {
  const facilities = app.config.layers.find((l) => l.id === "facilities");
  const cat = facilities?.style?.by?.categories?.find((c) => c.value === code);
  return cat ? ((currentLang() === "ru" && cat.label_ru) || cat.label) : code;
}

export class Analysis {
  constructor(app) {
    this.app = app;
    this.map = app.map;
    this.pane = document.getElementById("pane-analysis");
    this.overlay = L.layerGroup().addTo(this.map);
    this.picking = false;
    this.map.on("click", (e) => { if (this.picking) this.neighbourhood(e.latlng); });
  }

  configure(config, me) {
    this.me = me;
    const types = config.layers.find((l) => l.id === "facilities")?.style?.by?.categories?.map((c) => c.value) || NEEDS;
    const options = (list, selected) => list.map((v) => `<option value="${v}" ${v === selected ? "selected" : ""}>${escapeHtml(typeName(this.app, v))}</option>`).join("");
    const signedIn = !me.anonymous;
    this.pane.innerHTML = `
      <section aria-labelledby="an-nb"><h3 id="an-nb">${escapeHtml(t("an.neighbourhood"))}</h3>
        <p class="edit-status">${escapeHtml(t("an.nbHelp"))}</p>
        <button type="button" class="btn" id="an-pick" aria-pressed="false">${escapeHtml(t("an.pick"))}</button>
        <div id="an-nb-result" aria-live="polite"></div></section>
      <section aria-labelledby="an-needs"><h3 id="an-needs">${escapeHtml(t("an.needs"))}</h3>
        <label for="an-needs-type">${escapeHtml(t("an.type"))}</label>
        <select id="an-needs-type">${options(types.filter((v) => NEEDS.includes(v)), "kindergarten")}</select>
        <div class="actions"><button type="button" class="btn primary" id="an-needs-run">${escapeHtml(t("an.compute"))}</button></div>
        <div id="an-needs-result" aria-live="polite"></div></section>
      <section aria-labelledby="an-siting"><h3 id="an-siting">${escapeHtml(t("an.siting"))}</h3>
        ${signedIn ? `<form class="form" id="an-siting-form">
          <label for="an-site-type">${escapeHtml(t("an.type"))}</label>
          <select id="an-site-type" name="facility_type">${options(types.filter((v) => NEEDS.includes(v)), "school")}</select>
          <label for="an-site-model">${escapeHtml(t("an.model"))}</label>
          <select id="an-site-model" name="model"><option value="mclp">${escapeHtml(t("an.mclp"))}</option>
            <option value="p-median">${escapeHtml(t("an.pmedian"))}</option><option value="lscp">${escapeHtml(t("an.lscp"))}</option></select>
          <label for="an-site-k">${escapeHtml(t("an.k"))}</label>
          <input id="an-site-k" name="k" type="number" min="1" max="50" value="3">
          <label for="an-site-capacity">${escapeHtml(t("an.capacity"))}</label>
          <input id="an-site-capacity" name="capacity" type="number" min="1" placeholder="—">
          <label for="an-site-scenario">${escapeHtml(t("an.scenario"))}</label>
          <input id="an-site-scenario" name="scenario" maxlength="200" placeholder="${escapeHtml(t("an.scenarioHint"))}">
          <div class="actions"><button type="submit" class="btn primary" id="an-site-run">${escapeHtml(t("an.propose"))}</button></div>
          <progress id="an-site-progress" max="100" value="0" hidden></progress>
          <p class="edit-status">${escapeHtml(t("an.scenarioNote"))}</p>
        </form>
        <h4>${escapeHtml(t("an.saved"))}</h4><ul class="history" id="an-scenarios"></ul>` : `<p class="edit-status">${escapeHtml(t("an.signIn"))}</p>`}
        <div id="an-siting-result" aria-live="polite"></div></section>`;
    this.pane.querySelector("#an-pick").onclick = () => this.togglePick();
    this.pane.querySelector("#an-needs-run").onclick = () => this.needs(this.pane.querySelector("#an-needs-type").value);
    this.pane.querySelector("#an-siting-form")?.addEventListener("submit", (e) => { e.preventDefault(); this.siting(e.target); });
    if (signedIn) this.listScenarios();
  }

  // The user's siting scenarios: successful siting jobs, newest first; a click shows one again.
  async listScenarios() {
    const list = this.pane.querySelector("#an-scenarios");
    if (!list) return;
    try {
      const { data } = await request("/jobs?processID=siting&status=successful&limit=10");
      const items = await Promise.all(data.jobs.map(async (job) => {
        const { data: out } = await request(`/jobs/${job.jobID}/results`);
        return { job, out };
      }));
      list.innerHTML = items.map(({ job, out }, i) => `<li data-job="${escapeHtml(job.jobID)}">
          <button type="button" class="btn" data-i="${i}">${escapeHtml(out.scenario?.name || job.jobID)}</button>
          <span class="meta">${escapeHtml(new Date(job.finished || job.created).toLocaleString())} ·
          ${escapeHtml(out.report?.status || "")}</span></li>`).join("");
      list.onclick = (e) => {
        const i = e.target.dataset?.i;
        if (i !== undefined) this.showSiting(items[Number(i)].out);
      };
    } catch (err) {
      list.innerHTML = "";
    }
  }

  togglePick(on = !this.picking) {
    this.picking = on;
    const btn = this.pane.querySelector("#an-pick");
    btn.setAttribute("aria-pressed", String(on));
    btn.classList.toggle("primary", on);
    this.map.getContainer().style.cursor = on ? "crosshair" : "";
  }

  async neighbourhood(latlng) {
    this.togglePick(false);
    const box = this.pane.querySelector("#an-nb-result");
    box.textContent = t("popup.loading");
    try {
      const out = await runProcess("neighbourhood", { lon: latlng.lng, lat: latlng.lat });
      const r = { ...out, ...(out.summary || {}) };  // services and score, plus point, missing, city
      this.overlay.clearLayers();
      L.circleMarker(latlng, { radius: 8, color: "#0d47a1", weight: 3, fillOpacity: 0.3 }).addTo(this.overlay);
      const rows = Object.entries(r.services).map(([kind, s]) => `<tr data-kind="${escapeHtml(kind)}">
          <th>${escapeHtml(typeName(this.app, kind))}</th>
          <td>${s.status === "ok" ? escapeHtml(minutes(s.seconds)) : escapeHtml(t(`an.${s.status}`))}</td>
          <td>${s.status === "ok" ? escapeHtml(`${formatValue(Math.round(s.metres))} m`) : ""}</td>
          <td>${escapeHtml(s.name || "")}</td></tr>`).join("");
      const median = r.city?.median_score;
      box.innerHTML = `<table class="diff" id="an-nb-table"><tbody>${rows}</tbody></table>
        <p><strong>${escapeHtml(t("an.score"))}: <span id="an-score">${formatValue(r.score)}</span></strong>
        ${median !== undefined && median !== null ? ` · ${escapeHtml(t("an.median"))} ${formatValue(median)}` : ""}</p>
        ${r.missing?.length ? `<p class="edit-status">${escapeHtml(t("an.missing"))}: ${escapeHtml(r.missing.join(", "))}</p>` : ""}`;
    } catch (err) {
      box.innerHTML = `<div class="message error">${escapeHtml(err.message)}</div>`;
    }
  }

  async needs(type) {
    const box = this.pane.querySelector("#an-needs-result");
    box.textContent = t("popup.loading");
    try {
      const out = await runProcess("service-needs", { facility_type: type, territory: this.app.config.home?.oktmo });
      this.overlay.clearLayers();
      const max = Math.max(1, ...out.districts.features.map((f) => f.properties.deficit || 0));
      L.geoJSON(out.districts, {
        style: (f) => {
          const d = f.properties.deficit || 0;
          return { color: "#7f0000", weight: 0.5, fillColor: d > 0 ? `rgba(215,48,31,${0.15 + 0.7 * d / max})` : "#e5f5e0", fillOpacity: 0.7 };
        },
        onEachFeature: (f, l) => l.bindTooltip(`${t("an.deficit")}: ${formatValue(Math.round(f.properties.deficit || 0))}`),
      }).addTo(this.overlay);
      const byId = new Map((this.app.layers.entries.get("facilities")?.layer?.cdtData?.features || []).map((f) => [f.id, f]));
      for (const fac of out.facilities) {
        const feature = byId.get(fac.id);
        if (!feature) continue;
        const pct = fac.load_pct ?? 0;
        L.circleMarker([feature.geometry.coordinates[1], feature.geometry.coordinates[0]], {
          radius: 5 + Math.min(10, pct / 12), color: "#fff", weight: 1, fillOpacity: 0.9,
          fillColor: pct >= 100 ? "#b30000" : pct >= 80 ? "#fc8d59" : "#1a9850", pane: "cdt-points",
        }).bindTooltip(`${escapeHtml(fac.name || fac.id)}: ${formatValue(Math.round(fac.load))} / ${formatValue(fac.capacity)} (${formatValue(Math.round(pct))}%)`)
          .addTo(this.overlay);
      }
      const s = out.summary;
      box.innerHTML = `<table class="diff" id="an-needs-summary"><tbody>
        <tr><th>${escapeHtml(t("an.demand"))}</th><td>${formatValue(Math.round(s.demand ?? s.total_demand ?? 0))}</td></tr>
        <tr><th>${escapeHtml(t("an.capacityTotal"))}</th><td>${formatValue(Math.round(s.total_capacity))}</td></tr>
        <tr data-key="deficit"><th>${escapeHtml(t("an.deficit"))}</th><td>${formatValue(Math.round(s.deficit))}</td></tr>
        <tr><th>${escapeHtml(t("an.covered"))}</th><td>${s.covered_share !== undefined ? formatValue(Math.round(100 * s.covered_share)) + "%" : "—"}</td></tr>
        <tr><th>${escapeHtml(t("an.solver"))}</th><td>${escapeHtml(s.status || s.solver_status || "")}</td></tr>
        </tbody></table><p class="edit-status">${escapeHtml(t("an.needsLegend"))}</p>`;
    } catch (err) {
      box.innerHTML = `<div class="message error">${escapeHtml(err.message)}</div>`;
    }
  }

  async siting(form) {
    const box = this.pane.querySelector("#an-siting-result");
    const bar = this.pane.querySelector("#an-site-progress");
    const inputs = { facility_type: form.facility_type.value, model: form.model.value, k: Number(form.k.value),
      territory_oktmo: this.app.config.home?.oktmo || "19701000" };
    if (form.capacity.value) inputs.capacity = Number(form.capacity.value);
    if (form.scenario.value.trim()) inputs.scenario = form.scenario.value.trim();
    box.textContent = t("popup.loading");
    bar.hidden = false;
    bar.value = 0;
    try {
      const out = await runProcess("siting", inputs, (p) => { bar.value = p; });
      bar.value = 100;
      this.showSiting(out);
      this.listScenarios();
    } catch (err) {
      box.innerHTML = `<div class="message error">${escapeHtml(err.message)}</div>`;
      toast(err.message, "error");
    } finally {
      bar.hidden = true;
    }
  }

  showSiting(out) {
    const box = this.pane.querySelector("#an-siting-result");
    this.overlay.clearLayers();
    L.geoJSON(out.sites, {
      pointToLayer: (f, ll) => L.marker(ll, { title: `#${f.properties.rank}` }),
      onEachFeature: (f, l) => l.bindPopup(`<div class="popup"><h4>${escapeHtml(t("an.site"))} #${f.properties.rank}</h4>
        <table><tr><th>${escapeHtml(t("an.gain"))}</th><td>${formatValue(Math.round(f.properties.coverage_gain))}</td></tr>
        <tr><th>${escapeHtml(t("an.coveredDemand"))}</th><td>${formatValue(Math.round(f.properties.demand_covered))}</td></tr></table></div>`),
    }).addTo(this.overlay);
    const r = out.report, d = out.deficit;
    box.innerHTML = `<p><strong data-key="scenario">${escapeHtml(out.scenario?.name || "")}</strong></p>
      <table class="diff" id="an-siting-report"><tbody>
      <tr><th>${escapeHtml(t("an.solver"))}</th><td data-key="status">${escapeHtml(r.status)}</td></tr>
      <tr><th>${escapeHtml(t("an.objective"))}</th><td>${formatValue(r.objective)}</td></tr>
      <tr><th>${escapeHtml(t("an.gap"))}</th><td>${r.gap === null || r.gap === undefined ? "—" : (100 * r.gap).toFixed(2) + "%"}</td></tr>
      <tr><th>${escapeHtml(t("an.sites"))}</th><td data-key="sites">${formatValue(r.new_sites)}</td></tr>
      <tr><th>${escapeHtml(t("an.before"))}</th><td>${formatValue(Math.round(100 * d.share_before))}%</td></tr>
      <tr><th>${escapeHtml(t("an.after"))}</th><td data-key="after">${formatValue(Math.round(100 * d.share_after))}%</td></tr>
      </tbody></table>`;
    if (out.sites.features.length) this.map.fitBounds(L.geoJSON(out.sites).getBounds().pad(0.3), { maxZoom: 15 });
  }
}
