// The Plan tab: an indicator over the territories (search, choropleth with a legend, series chart with trends),
// the goal tree of a program, and scenarios (compare with the baseline, difference map, goal seek).
import { getJSON, request, escapeHtml } from "./api.js";
import { t, currentLang } from "./i18n.js";
import { formatValue } from "./layers.js";

const name = (d) => (currentLang() === "ru" ? d.name_ru : d.name_en) || d.code;
const SEQUENTIAL = ["#fff5eb", "#fdd0a2", "#fd8d3c", "#d94801", "#7f2704"];
const SIGNED = { better: "#2166ac", worse: "#b2182b", changed: "#fdae61", same: "#f0f0f0" };
const SERIES = { actual: "#1565c0", forecast: "#ef6c00", target: "#2e7d32" };
const pct = (v) => (v === null || v === undefined ? "—" : `${(100 * v).toFixed(1)} %`);

export class Plan {
  constructor(app) {
    this.app = app;
    this.pane = document.getElementById("pane-plan");
    this.chart = null;
    this.mapLayer = null;
    this.code = null;
  }

  async configure() {
    const places = this.app.config?.territories || [];
    const home = this.app.config?.home?.oktmo;
    this.pane.innerHTML = `
      <h3>${escapeHtml(t("plan.indicator"))}</h3>
      <label for="plan-q">${escapeHtml(t("plan.search"))}</label>
      <input id="plan-q" type="search" autocomplete="off" spellcheck="false">
      <select id="plan-indicator" size="8" aria-label="${escapeHtml(t("plan.indicator"))}"></select>
      <div id="plan-legend" class="plan-legend" aria-live="polite"></div>
      <label for="plan-territory">${escapeHtml(t("plan.territory"))}</label>
      <select id="plan-territory">${places.map((p) => `<option value="${escapeHtml(p.oktmo)}"${p.oktmo === home ? " selected" : ""}>${escapeHtml(p.name)}</option>`).join("")}</select>
      <div class="plan-chart"><canvas id="plan-chart" role="img" aria-label="${escapeHtml(t("plan.series"))}"></canvas></div>
      <div id="plan-trends" class="edit-status"></div>
      <h3>${escapeHtml(t("plan.goals"))}</h3>
      <select id="plan-program" aria-label="${escapeHtml(t("plan.program"))}"></select>
      <div id="plan-goals"></div>
      <h3>${escapeHtml(t("plan.scenarios"))}</h3>
      <select id="plan-scenario" aria-label="${escapeHtml(t("plan.scenario"))}"></select>
      <label for="plan-codes">${escapeHtml(t("plan.codes"))}</label>
      <input id="plan-codes" value="fac_school_count,fac_school_provision,acc_mean_walk_school">
      <div class="actions"><button type="button" class="btn" id="plan-compare">${escapeHtml(t("plan.compare"))}</button>
        <button type="button" class="btn" id="plan-diffmap">${escapeHtml(t("plan.diffMap"))}</button></div>
      <div id="plan-compare-note" class="edit-status" aria-live="polite"></div>
      <div class="table-scroll"><table class="diff" id="plan-compare-table"></table></div>
      <h3>${escapeHtml(t("plan.seek"))}</h3>
      <form id="plan-seek" class="plan-seek">
        <label>${escapeHtml(t("plan.seekIndicator"))} <input name="indicator" required value="fac_kindergarten_capacity_per_1000"></label>
        <label>${escapeHtml(t("plan.target"))} <input name="target" type="number" step="any" required></label>
        <label>${escapeHtml(t("plan.lever"))} <select name="lever"></select></label>
        <label>${escapeHtml(t("plan.type"))} <select name="type"></select></label>
        <label>${escapeHtml(t("plan.low"))} <input name="low" type="number" step="any" value="1"></label>
        <label>${escapeHtml(t("plan.high"))} <input name="high" type="number" step="any" value="2"></label>
        <button type="submit" class="btn">${escapeHtml(t("plan.run"))}</button>
      </form>
      <div id="plan-seek-result" aria-live="polite"></div>`;
    const $ = (sel) => this.pane.querySelector(sel);
    let timer = null;
    $("#plan-q").oninput = () => { clearTimeout(timer); timer = setTimeout(() => this.search($("#plan-q").value), 250); };
    $("#plan-indicator").onchange = () => this.show($("#plan-indicator").value);
    $("#plan-territory").onchange = () => this.code && this.series();
    $("#plan-program").onchange = () => this.goals($("#plan-program").value);
    $("#plan-compare").onclick = () => this.compare();
    $("#plan-diffmap").onclick = () => this.differenceMap();
    $("#plan-seek").onsubmit = (e) => { e.preventDefault(); this.seek(); };
    await Promise.all([this.search(""), this.programs(), this.scenarios()]);
  }

  async search(q) {
    const list = await getJSON(`/indicators?limit=300&q=${encodeURIComponent(q.trim())}`);
    const groups = {};
    for (const d of list.indicators) (groups[d.family || "—"] ||= []).push(d);
    this.pane.querySelector("#plan-indicator").innerHTML = Object.entries(groups).map(([family, defs]) =>
      `<optgroup label="${escapeHtml(family)}">${defs.map((d) => `<option value="${escapeHtml(d.code)}" title="${escapeHtml(d.code)}"${d.code === this.code ? " selected" : ""}>${escapeHtml(name(d))}</option>`).join("")}</optgroup>`).join("")
      + (list.total > list.indicators.length ? `<option disabled>… ${list.total - list.indicators.length}</option>` : "");
  }

  async show(code) {
    this.code = code;
    await Promise.all([this.choropleth(`/indicators/${encodeURIComponent(code)}/map`), this.series()]);
  }

  clearMap() {
    if (this.mapLayer) this.app.map.removeLayer(this.mapLayer);
    this.mapLayer = null;
  }

  // Equal-interval classes of the value (or, for a difference map, better / worse / unchanged).
  async choropleth(url, difference = false) {
    const legend = this.pane.querySelector("#plan-legend");
    const data = await getJSON(url);
    this.clearMap();
    const values = data.features.map((f) => (difference ? f.properties.difference : f.properties.value)).filter((v) => v !== null && v !== undefined);
    const unit = data.indicator.unit;
    if (!values.length) {
      legend.innerHTML = `<p class="edit-status">${escapeHtml(t("plan.noValues"))}</p>`;
      return;
    }
    const min = Math.min(...values), max = Math.max(...values);
    const flat = max === min;  // one value (or all equal): one class
    const step = (max - min) / SEQUENTIAL.length;
    const klass = (v) => (flat ? 2 : Math.min(SEQUENTIAL.length - 1, Math.floor((v - min) / step)));
    const signed = (p) => (p.better === true ? "better" : p.better === false ? "worse" : p.difference ? "changed" : "same");
    const colour = (p) => (difference ? SIGNED[signed(p)] : p.value === null ? "#ccc" : SEQUENTIAL[klass(p.value)]);
    this.mapLayer = L.geoJSON(data, {
      style: (f) => ({ color: "#444", weight: 1, fillOpacity: 0.7, fillColor: colour(f.properties) }),
      onEachFeature: (f, l) => l.bindTooltip(`${escapeHtml(f.properties.name)}: ${escapeHtml(formatValue(f.properties.value))} ${escapeHtml(unit)}`
        + (difference ? ` (${escapeHtml(formatValue(f.properties.baseline))} → ${escapeHtml(formatValue(f.properties.scenario))}, Δ ${escapeHtml(formatValue(f.properties.difference))})` : "")),
    }).addTo(this.app.map);
    const swatch = (c, label) => `<li><span class="swatch" style="background:${c}"></span>${escapeHtml(label)}</li>`;
    const rows = difference
      ? Object.entries(SIGNED).map(([k, c]) => swatch(c, t(`plan.${k}`)))
      : flat ? [swatch(SEQUENTIAL[2], formatValue(min))] : SEQUENTIAL.map((c, i) => swatch(c, `${formatValue(min + i * step)} – ${formatValue(i === SEQUENTIAL.length - 1 ? max : min + (i + 1) * step)}`));
    legend.innerHTML = `<strong>${escapeHtml(name(data.indicator))}</strong>, ${escapeHtml(unit)}${data.year ? ` · ${data.year}` : ""}
      ${difference ? ` · ${escapeHtml(t("plan.difference"))}` : ""}<ul class="legend">${rows.join("")}</ul>`;
    this.app.map.fitBounds(this.mapLayer.getBounds(), { maxZoom: 12 });
  }

  async series() {
    const oktmo = this.pane.querySelector("#plan-territory").value;
    const box = this.pane.querySelector("#plan-trends");
    if (!oktmo) return;
    const data = await getJSON(`/indicators/${encodeURIComponent(this.code)}/series?territory=${encodeURIComponent(oktmo)}`);
    const years = [...new Set(Object.values(data.series).flatMap((s) => Object.keys(s)))].sort();
    const datasets = Object.entries(data.series).map(([type, s]) => ({
      label: t(`plan.${type}`), data: years.map((y) => s[y] ?? null), borderColor: SERIES[type] || "#666",
      backgroundColor: SERIES[type] || "#666", borderDash: type === "actual" ? [] : [6, 4], spanGaps: true }));
    if (this.chart) this.chart.destroy();
    this.chart = new Chart(this.pane.querySelector("#plan-chart"), {
      type: "line", data: { labels: years, datasets },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { title: { display: true, text: `${name(data.indicator)}, ${data.indicator.unit}` } } },
    });
    const tr = data.trends;
    const parts = [`${t("plan.points")}: ${tr.points}`];
    if (tr.cagr !== null) parts.push(`CAGR ${pct(tr.cagr)}`);
    if (tr.linear) parts.push(`${t("plan.slope")} ${formatValue(tr.linear.slope)}/${t("plan.year")} (R² ${tr.linear.r2.toFixed(2)})`);
    if (tr.structural_break) parts.push(`${t("plan.break")} ${tr.structural_break.period}${tr.structural_break.significant ? " ✱" : ""} (p ${tr.structural_break.p_value_adjusted.toFixed(3)})`);
    box.textContent = parts.join(" · ");
  }

  async programs() {
    const list = (await getJSON("/programs")).programs;
    const select = this.pane.querySelector("#plan-program");
    select.innerHTML = `<option value="">${escapeHtml(list.length ? t("plan.program") : t("plan.noPrograms"))}…</option>`
      + list.map((p) => `<option value="${p.id}">${escapeHtml(`${p.code} · ${p.name} (${p.goals})`)}</option>`).join("");
  }

  async goals(id) {
    const box = this.pane.querySelector("#plan-goals");
    if (!id) { box.innerHTML = ""; return; }
    const tree = (await getJSON(`/programs/${id}/goals`)).goals;
    const item = (g) => {
      const s = g.status || {};
      const verdict = s.verdict ? `<span class="verdict verdict-${escapeHtml(s.verdict.replace(/ /g, "-"))}">${escapeHtml(t(`plan.v.${s.verdict}`))}</span>` : "";
      return `<li data-goal="${g.id}"><strong>${escapeHtml(g.title)}</strong> · ${escapeHtml(g.territory_name)}
        · ${escapeHtml(formatValue(s.latest_value))} → ${escapeHtml(formatValue(g.target_value))} (${g.target_year})
        · <span class="achievement">${s.achievement_pct ?? "—"} %</span> ${verdict}
        ${s.critical ? `<span class="critical" title="${escapeHtml(t("plan.critical"))}">⚠ ${escapeHtml(t("plan.critical"))}</span>` : ""}
        ${g.children.length ? `<ul>${g.children.map(item).join("")}</ul>` : ""}</li>`;
    };
    box.innerHTML = tree.length ? `<ul class="goal-tree">${tree.map(item).join("")}</ul>` : `<p class="edit-status">${escapeHtml(t("plan.noGoals"))}</p>`;
  }

  async scenarios() {
    const [list, levers] = await Promise.all([getJSON("/scenarios"), getJSON("/scenarios/levers")]);
    this.scenarioList = list.scenarios;
    this.pane.querySelector("#plan-scenario").innerHTML = list.scenarios.length
      ? list.scenarios.map((s) => `<option value="${s.id}">${escapeHtml(`${s.name} · ${s.territory || s.oktmo} · ${s.edits} ${t("plan.edits")}`)}</option>`).join("")
      : `<option value="">${escapeHtml(t("plan.noScenarios"))}</option>`;
    const form = this.pane.querySelector("#plan-seek");
    this.levers = Object.fromEntries(levers.levers.map((lv) => [lv.name, lv]));
    form.lever.innerHTML = levers.levers.map((lv) => `<option value="${lv.name}" title="${escapeHtml(lv.title)}"${lv.name === "capacity_factor" ? " selected" : ""}>${escapeHtml(lv.name)}</option>`).join("");
    form.type.innerHTML = levers.facility_types.map((c) => `<option${c === "kindergarten" ? " selected" : ""}>${escapeHtml(c)}</option>`).join("");
    form.lever.onchange = () => { form.type.disabled = !this.levers[form.lever.value].needs_type; };
  }

  scenarioId() {
    const id = this.pane.querySelector("#plan-scenario").value;
    if (!id) this.pane.querySelector("#plan-compare-note").textContent = t("plan.noScenarios");
    return id;
  }

  codes() { return this.pane.querySelector("#plan-codes").value.split(",").map((c) => c.trim()).filter(Boolean); }

  async compare() {
    const id = this.scenarioId();
    if (!id) return;
    const note = this.pane.querySelector("#plan-compare-note");
    const scenario = this.scenarioList.find((s) => String(s.id) === id);
    note.textContent = t("plan.computing");
    let data;
    try {
      data = await getJSON(`/scenarios/${id}/compare?codes=${encodeURIComponent(this.codes().join(","))}${scenario?.oktmo ? `&territory=${scenario.oktmo}` : ""}`);
    } catch (err) { note.textContent = err.message; return; }
    note.textContent = "";
    const head = `<thead><tr><th>${escapeHtml(t("plan.indicator"))}</th><th>${escapeHtml(t("plan.baseline"))}</th><th>${escapeHtml(t("plan.scenario"))}</th><th>Δ</th></tr></thead>`;
    this.pane.querySelector("#plan-compare-table").innerHTML = head + `<tbody>${data.rows.map((r) => {
      const cls = r.better === true ? "better" : r.better === false ? "worse" : "";
      return `<tr data-code="${escapeHtml(r.code)}" class="${cls}"><th title="${escapeHtml(r.code)}">${escapeHtml(name(r))}, ${escapeHtml(r.unit)}</th>
        <td>${escapeHtml(formatValue(r.baseline))}</td><td>${escapeHtml(formatValue(r.scenario))}</td>
        <td>${escapeHtml(formatValue(r.difference))}${r.percent !== null ? ` (${r.percent.toFixed(1)} %)` : ""}</td></tr>`;
    }).join("")}</tbody>`;
  }

  async differenceMap() {
    const id = this.scenarioId();
    const code = this.codes()[0];
    if (!id || !code) return;
    const note = this.pane.querySelector("#plan-compare-note");
    note.textContent = t("plan.computing");
    try {
      await this.choropleth(`/indicators/${encodeURIComponent(code)}/map?scenario=${id}`, true);
      note.textContent = "";
    } catch (err) { note.textContent = err.message; }
  }

  async seek() {
    const id = this.scenarioId();
    if (!id) return;
    const form = this.pane.querySelector("#plan-seek");
    const box = this.pane.querySelector("#plan-seek-result");
    const lever = this.levers[form.lever.value].needs_type ? `${form.lever.value}:${form.type.value}` : form.lever.value;
    box.textContent = t("plan.computing");
    try {
      const { data } = await request(`/scenarios/${id}/goal-seek`, { method: "POST", body: {
        indicator: form.indicator.value.trim(), target: Number(form.target.value),
        levers: { [lever]: [Number(form.low.value), Number(form.high.value)] } } });
      box.innerHTML = data.met
        ? `<p class="better">${escapeHtml(t("plan.reached"))}: ${Object.entries(data.levers).map(([k, v]) => `${escapeHtml(k)} = ${escapeHtml(formatValue(v))}`).join(", ")} → ${escapeHtml(formatValue(data.value))}</p>`
        : `<p class="worse">${escapeHtml(t("plan.unreachable"))} (${escapeHtml(formatValue(data.value))}; ${escapeHtml(data.message || data.status)})</p>`;
    } catch (err) { box.textContent = err.message; }
  }
}
