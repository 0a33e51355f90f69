// The Energy tab: fuel and energy balances (Order 1169 layout) as a table, a Sankey diagram of their flows,
// the checks that fail, CO2, and the XLSX export.
import { getJSON, escapeHtml } from "./api.js";
import { t, currentLang } from "./i18n.js";
import { formatValue } from "./layers.js";

const label = (item) => (currentLang() === "ru" ? item.label_ru : item.label_en) || item.code;

export class Energy {
  constructor(app) {
    this.app = app;
    this.pane = document.getElementById("pane-energy");
    this.chart = null;
  }

  async configure() {
    let list;
    try {
      list = await getJSON("/energy/balances");
    } catch (err) {
      this.pane.innerHTML = `<div class="message error">${escapeHtml(err.message)}</div>`;
      return;
    }
    if (!list.balances.length) {
      this.pane.innerHTML = `<p class="edit-status">${escapeHtml(t("en.none"))}</p>`;
      return;
    }
    this.pane.innerHTML = `
      <label for="en-balance">${escapeHtml(t("en.balance"))}</label>
      <select id="en-balance">${list.balances.map((b) => `<option value="${b.id}">${escapeHtml(
        `${b.territory_name || b.territory_oktmo} · ${b.year} · ${b.kind}${b.scenario ? ` · ${b.scenario}` : ""}`)}</option>`).join("")}</select>
      <div class="actions"><a class="btn" id="en-xlsx" href="#" download>${escapeHtml(t("en.xlsx"))}</a>
        <button type="button" class="btn" id="en-map" aria-pressed="false">${escapeHtml(t("en.map"))}</button></div>
      <div id="en-map-note" class="edit-status" aria-live="polite"></div>
      <h3>${escapeHtml(t("en.flows"))}</h3>
      <div class="sankey-box"><canvas id="en-sankey" role="img" aria-label="${escapeHtml(t("en.flows"))}"></canvas></div>
      <h3>${escapeHtml(t("en.checks"))}</h3><ul class="history" id="en-checks"></ul>
      <h3>${escapeHtml(t("en.co2"))}</h3><div id="en-co2"></div>
      <h3>${escapeHtml(t("en.table"))}</h3><div class="table-scroll"><table class="diff balance-table" id="en-table"></table></div>`;
    this.pane.querySelector("#en-map").onclick = () => this.toggleMap();
    const select = this.pane.querySelector("#en-balance");
    select.onchange = () => this.show(select.value);
    await this.show(select.value);
  }

  async show(id) {
    this.pane.querySelector("#en-xlsx").href = `/energy/balances/${id}/xlsx`;
    const [balance, flows, checks, co2] = await Promise.all([
      getJSON(`/energy/balances/${id}`), getJSON(`/energy/balances/${id}/flows`),
      getJSON(`/energy/balances/${id}/checks`), getJSON(`/energy/balances/${id}/co2`).catch(() => null)]);
    this.renderTable(balance);
    this.renderSankey(flows);
    const findings = checks.findings;
    this.pane.querySelector("#en-checks").innerHTML = findings.length
      ? findings.slice(0, 50).map((f) => `<li data-check="${escapeHtml(f.check)}"><strong>${escapeHtml(f.check)}</strong>
          ${escapeHtml(f.row)} × ${escapeHtml(f.column)}: ${formatValue(f.actual)} ≠ ${formatValue(f.expected)}
          (${formatValue(f.difference)})</li>`).join("") + (findings.length > 50 ? `<li>… ${findings.length - 50}</li>` : "")
      : `<li>${escapeHtml(t("en.ok"))}</li>`;
    const box = this.pane.querySelector("#en-co2");
    box.innerHTML = co2 ? `<table class="diff" id="en-co2-table"><tbody>${Object.entries(co2.summary || {}).map(([k, v]) =>
      `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(formatValue(v))}</td></tr>`).join("")}</tbody></table>` : "";
  }

  // Consumption and CO2 per resident by territory (territories with a balance, a boundary and a population).
  async toggleMap() {
    const btn = this.pane.querySelector("#en-map");
    const note = this.pane.querySelector("#en-map-note");
    if (this.mapLayer) {
      this.app.map.removeLayer(this.mapLayer);
      this.mapLayer = null;
      btn.setAttribute("aria-pressed", "false");
      note.textContent = "";
      return;
    }
    const data = await getJSON("/energy/territories");
    if (!data.features.length) {
      note.textContent = t("en.mapNone");
      return;
    }
    const values = data.features.map((f) => f.properties.final_consumption_tce_per_capita || 0);
    const max = Math.max(...values, 1e-9);
    this.mapLayer = L.geoJSON(data, {
      style: (f) => ({ color: "#4a1486", weight: 1, fillOpacity: 0.65,
        fillColor: `hsl(${30 - 30 * (f.properties.final_consumption_tce_per_capita || 0) / max}, 85%, ${70 - 35 * (f.properties.final_consumption_tce_per_capita || 0) / max}%)` }),
      onEachFeature: (f, l) => l.bindTooltip(`${escapeHtml(f.properties.name)} ${f.properties.year}: ` +
        `${formatValue(f.properties.final_consumption_tce_per_capita)} ${t("en.perCapita")}, ` +
        `${formatValue(f.properties.co2_t_per_capita)} ${t("en.co2PerCapita")}`),
    }).addTo(this.app.map);
    btn.setAttribute("aria-pressed", "true");
    note.textContent = `${data.features.length} · ${t("en.mapLegend")}`;
    this.app.map.fitBounds(this.mapLayer.getBounds(), { maxZoom: 12 });
  }

  renderTable(balance) {
    const cols = balance.columns;
    const head = `<thead><tr><th>${escapeHtml(t("en.unit"))}</th>${cols.map((c) => `<th>${escapeHtml(label(c))}</th>`).join("")}</tr></thead>`;
    const body = balance.rows.map((r) => `<tr data-row="${r.code}"><th style="padding-left:${0.3 + (r.level || 0)}rem">${escapeHtml(label(r))}</th>${cols.map((c) => {
      const v = balance.values[r.code]?.[c.code];
      return `<td data-col="${c.code}">${v === null || v === undefined ? "" : escapeHtml(formatValue(v))}</td>`;
    }).join("")}</tr>`).join("");
    this.pane.querySelector("#en-table").innerHTML = head + `<tbody>${body}</tbody>`;
  }

  renderSankey(flows) {
    const names = flows.labels || {};
    const data = flows.links.map((l) => ({ from: l.from, to: l.to, flow: l.value }));
    const canvas = this.pane.querySelector("#en-sankey");
    if (this.chart) this.chart.destroy();
    this.chart = new Chart(canvas, {
      type: "sankey",
      data: { datasets: [{ data, labels: Object.fromEntries(Object.entries(names).map(([k, v]) => [k, currentLang() === "ru" ? v[0] : v[1]])),
        colorFrom: () => "#1565c0", colorTo: () => "#ef6c00", colorMode: "gradient", size: "max" }] },
      options: { animation: false, responsive: true, maintainAspectRatio: false },
    });
  }
}
