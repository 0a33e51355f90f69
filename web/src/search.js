// The search box: addresses, cadastral numbers, facilities, territories (GET /search), keyboard navigable.
import { getJSON, escapeHtml } from "./api.js";
import { t } from "./i18n.js";

const KIND_LABEL = { building: ["building", "здание"], parcel: ["parcel", "участок"], facility: ["facility", "объект"],
  territory: ["territory", "территория"] };

export function initSearch(app) {
  const input = document.getElementById("search-input");
  const list = document.getElementById("search-results");
  let results = [];
  let active = -1;
  let timer = null;
  let seq = 0;

  const close = () => { list.hidden = true; input.setAttribute("aria-expanded", "false"); active = -1; };
  const highlight = (i) => {
    active = i;
    [...list.children].forEach((li, j) => li.setAttribute("aria-selected", String(j === i)));
    if (list.children[i]) input.setAttribute("aria-activedescendant", list.children[i].id);
  };
  const choose = (i) => {
    const r = results[i];
    if (!r) return;
    close();
    input.value = r.label;
    app.goTo(r);
  };

  async function run() {
    const q = input.value.trim();
    if (q.length < 2) { close(); return; }
    const mine = ++seq;
    let data;
    try {
      data = await getJSON(`/search?${new URLSearchParams({ q, limit: "10" })}`);
    } catch (err) {
      data = { results: [] };
    }
    if (mine !== seq) return;  // a newer query is on its way
    results = data.results;
    const lang = document.documentElement.lang === "ru" ? 1 : 0;
    list.innerHTML = results.length
      ? results.map((r, i) => `<li role="option" id="search-opt-${i}" data-i="${i}" aria-selected="false">
          ${escapeHtml(r.label)}<span class="kind">${escapeHtml((KIND_LABEL[r.kind] || [r.kind, r.kind])[lang])}</span></li>`).join("")
      : `<li role="option" aria-disabled="true">${escapeHtml(t("search.none"))}</li>`;
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    highlight(results.length ? 0 : -1);
  }

  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(run, 200); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" && results.length) { e.preventDefault(); highlight((active + 1) % results.length); }
    else if (e.key === "ArrowUp" && results.length) { e.preventDefault(); highlight((active - 1 + results.length) % results.length); }
    else if (e.key === "Enter") { e.preventDefault(); if (active >= 0) choose(active); else run(); }
    else if (e.key === "Escape") close();
  });
  list.addEventListener("mousedown", (e) => {
    const li = e.target.closest("li[data-i]");
    if (li) { e.preventDefault(); choose(Number(li.dataset.i)); }
  });
  input.addEventListener("blur", () => setTimeout(close, 150));
}
