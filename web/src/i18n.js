// Two languages: Russian for the officials and residents the platform is for, English for everyone else.
const STRINGS = {
  en: {
    "tab.analysis": "Analysis", "tab.energy": "Energy",
    "en.none": "No fuel and energy balances loaded (cdt load feb FILE).", "en.balance": "Balance",
    "en.xlsx": "Download XLSX (Order 1169 layout)", "en.flows": "Flows, thousand tce",
    "en.checks": "Checks that fail", "en.ok": "All checks pass", "en.co2": "CO2 from fuel combustion",
    "en.table": "Balance, thousand tce", "en.unit": "thousand tce", "en.map": "Per-capita map",
    "en.mapNone": "No territory with a balance, a boundary and a population to map.",
    "en.perCapita": "tce per resident (final consumption)", "en.co2PerCapita": "t CO2 per resident",
    "en.mapLegend": "territories; darker = more final consumption per resident",
    "an.neighbourhood": "Neighbourhood", "an.nbHelp": "Walking times from a home to daily needs, and its 15-minute score.",
    "an.pick": "Click a home on the map", "an.min": "min", "an.score": "15-minute score",
    "an.median": "city median", "an.missing": "Not in the data", "an.unreachable": "unreachable",
    "an.needs": "Needs by planning norms", "an.type": "Facility type", "an.compute": "Compute",
    "an.demand": "Demand (places)", "an.capacityTotal": "Capacity (places)", "an.deficit": "Deficit (places)",
    "an.covered": "Residents covered", "an.solver": "Solver status",
    "an.needsLegend": "Map: deficit per 1 km hexagon (red) and facility load (green < 80%, orange < 100%, red full).",
    "an.siting": "Siting", "an.model": "Model", "an.mclp": "Maximal covering (MCLP)", "an.pmedian": "p-median",
    "an.lscp": "Set covering (LSCP)", "an.k": "New sites (k)", "an.capacity": "Capacity of a new site (optional)",
    "an.propose": "Propose sites", "an.signIn": "Sign in to run siting.",
    "an.scenarioNote": "Proposals are a scenario: shown on the map and kept in the job, base data untouched.",
    "an.site": "Proposed site", "an.gain": "Coverage gain", "an.coveredDemand": "Demand within reach",
    "an.objective": "Objective", "an.gap": "MIP gap", "an.sites": "New sites", "an.before": "Covered before",
    "an.after": "Covered after", "an.scenario": "Scenario name", "an.scenarioHint": "e.g. 2 schools in the south",
    "an.saved": "Your scenarios",
    "app.name": "CDT", "panel.toggle": "Layers and tools", "search.label": "Search",
    "search.placeholder": "Address, cadastral number, facility, territory", "search.none": "Nothing found",
    "territory.label": "Zoom to territory", "tab.layers": "Layers", "tab.edit": "Edit",
    "basemap.offline": "CDT base map (offline)", "basemap.online": "Online base map", "basemap.none": "No base map",
    "layer.zoomIn": "zoom in to see", "layer.legend": "Legend", "layer.features": "features",
    "balance.title": "Territory balance (functional zones, ha)",
    "login": "Sign in", "logout": "Sign out", "login.title": "Sign in to CDT", "login.login": "Login",
    "login.password": "Password", "login.failed": "Wrong login or password", "cancel": "Cancel", "close": "Close",
    "citizen": "Public access", "role.federal": "federal", "role.regional": "regional", "role.municipal": "municipal",
    "role.agency": "agency", "role.analyst": "analyst", "role.enterprise": "enterprise",
    "popup.loading": "Loading…", "other": "other", "no value": "no value",
    "edit.layer": "Layer to edit", "edit.start": "Start editing", "edit.stop": "Stop editing",
    "edit.save": "Save", "edit.undo": "Undo", "edit.redo": "Redo", "edit.discard": "Discard changes",
    "edit.pending": "{n} unsaved change(s)", "edit.none": "No unsaved changes",
    "edit.help": "Draw with the tools on the map; click a feature to edit its attributes. Snapping to buildings, parcels and zones is on.",
    "edit.zoomIn": "Zoom in to level {z} or more to edit (the features of the view are loaded).",
    "edit.selfIntersection": "The geometry intersects itself: fix it before saving.",
    "edit.saved": "Saved {n} change(s)", "edit.form": "Attributes", "edit.history": "History",
    "edit.required": "Required", "edit.mustBeInt": "Must be a whole number", "edit.mustBeNumber": "Must be a number",
    "edit.min": "Must be at least {v}", "edit.max": "Must be at most {v}", "edit.oneOf": "Choose one of the values",
    "edit.tooLong": "At most {v} characters", "edit.fixForm": "Fix the highlighted fields first",
    "edit.server": "The server refused it: {msg}", "edit.newFeature": "new feature",
    "conflict.title": "Somebody changed this feature after you opened it",
    "conflict.text": "Feature {id} of {layer} is now at version {v}. Compare and choose:",
    "conflict.field": "Field", "conflict.start": "When you opened it", "conflict.theirs": "Now on the server",
    "conflict.mine": "Yours", "conflict.reload": "Reload theirs (drop my change)",
    "conflict.overwrite": "Overwrite with mine", "conflict.geometry": "geometry",
    "conflict.changed": "changed", "conflict.same": "unchanged",
    "history.title": "History of {layer} {id}", "history.revert": "Revert to this version",
    "history.reverted": "Reverted to version {v}", "history.by": "by", "history.empty": "No history",
    "history.confirm": "Make version {v} current again?",
    "error.network": "The server cannot be reached", "error.generic": "Something went wrong: {msg}",
  },
  ru: {
    "tab.analysis": "Анализ", "tab.energy": "Энергетика",
    "en.none": "Топливно-энергетические балансы не загружены (cdt load feb ФАЙЛ).", "en.balance": "Баланс",
    "en.xlsx": "Скачать XLSX (форма приказа № 1169)", "en.flows": "Потоки, тыс. т у.т.",
    "en.checks": "Нарушенные проверки", "en.ok": "Все проверки пройдены", "en.co2": "CO2 от сжигания топлива",
    "en.table": "Баланс, тыс. т у.т.", "en.unit": "тыс. т у.т.", "en.map": "Карта на душу населения",
    "en.mapNone": "Нет территорий с балансом, границей и населением для карты.",
    "en.perCapita": "т у.т. на жителя (конечное потребление)", "en.co2PerCapita": "т CO2 на жителя",
    "en.mapLegend": "территорий; темнее — больше конечного потребления на жителя",
    "an.neighbourhood": "Окрестности", "an.nbHelp": "Время пешком от дома до объектов повседневного спроса и индекс «15 минут».",
    "an.pick": "Щёлкните дом на карте", "an.min": "мин", "an.score": "Индекс «15 минут»",
    "an.median": "медиана города", "an.missing": "Нет в данных", "an.unreachable": "недостижимо",
    "an.needs": "Потребность по нормативам", "an.type": "Тип объекта", "an.compute": "Рассчитать",
    "an.demand": "Потребность (мест)", "an.capacityTotal": "Мощность (мест)", "an.deficit": "Дефицит (мест)",
    "an.covered": "Обеспечено жителей", "an.solver": "Статус решателя",
    "an.needsLegend": "Карта: дефицит по шестиугольникам 1 км (красный) и загрузка объектов (зелёный < 80%, оранжевый < 100%, красный — полная).",
    "an.siting": "Размещение", "an.model": "Модель", "an.mclp": "Максимальное покрытие (MCLP)", "an.pmedian": "p-медиана",
    "an.lscp": "Покрытие множества (LSCP)", "an.k": "Новых объектов (k)", "an.capacity": "Мощность нового объекта (необяз.)",
    "an.propose": "Предложить места", "an.signIn": "Войдите, чтобы рассчитать размещение.",
    "an.scenarioNote": "Предложения — сценарий: показаны на карте и сохранены в задании, базовые данные не меняются.",
    "an.site": "Предлагаемое место", "an.gain": "Прирост покрытия", "an.coveredDemand": "Спрос в зоне доступности",
    "an.objective": "Целевая функция", "an.gap": "Разрыв MIP", "an.sites": "Новых мест", "an.before": "Покрыто до",
    "an.after": "Покрыто после", "an.scenario": "Название сценария", "an.scenarioHint": "напр. 2 школы на юге",
    "an.saved": "Ваши сценарии",
    "app.name": "ЦДГ", "panel.toggle": "Слои и инструменты", "search.label": "Поиск",
    "search.placeholder": "Адрес, кадастровый номер, объект, территория", "search.none": "Ничего не найдено",
    "territory.label": "К территории", "tab.layers": "Слои", "tab.edit": "Редактирование",
    "basemap.offline": "Подложка CDT (офлайн)", "basemap.online": "Онлайн-подложка", "basemap.none": "Без подложки",
    "layer.zoomIn": "приблизьте карту", "layer.legend": "Легенда", "layer.features": "объектов",
    "balance.title": "Баланс территории (функциональные зоны, га)",
    "login": "Войти", "logout": "Выйти", "login.title": "Вход в CDT", "login.login": "Логин",
    "login.password": "Пароль", "login.failed": "Неверный логин или пароль", "cancel": "Отмена", "close": "Закрыть",
    "citizen": "Публичный доступ", "role.federal": "федеральный", "role.regional": "региональный",
    "role.municipal": "муниципальный", "role.agency": "ведомство", "role.analyst": "аналитик",
    "role.enterprise": "предприятие", "popup.loading": "Загрузка…", "other": "прочие", "no value": "нет значения",
    "edit.layer": "Слой для редактирования", "edit.start": "Начать редактирование", "edit.stop": "Закончить",
    "edit.save": "Сохранить", "edit.undo": "Отменить", "edit.redo": "Повторить", "edit.discard": "Сбросить изменения",
    "edit.pending": "Несохранённых изменений: {n}", "edit.none": "Нет несохранённых изменений",
    "edit.help": "Рисуйте инструментами на карте; щёлкните объект, чтобы изменить атрибуты. Привязка к зданиям, участкам и зонам включена.",
    "edit.zoomIn": "Приблизьте карту до уровня {z} или больше (загружаются объекты видимой области).",
    "edit.selfIntersection": "Геометрия самопересекается: исправьте перед сохранением.",
    "edit.saved": "Сохранено изменений: {n}", "edit.form": "Атрибуты", "edit.history": "История",
    "edit.required": "Обязательное поле", "edit.mustBeInt": "Нужно целое число", "edit.mustBeNumber": "Нужно число",
    "edit.min": "Не меньше {v}", "edit.max": "Не больше {v}", "edit.oneOf": "Выберите значение из списка",
    "edit.tooLong": "Не более {v} символов", "edit.fixForm": "Исправьте выделенные поля",
    "edit.server": "Сервер отклонил изменение: {msg}", "edit.newFeature": "новый объект",
    "conflict.title": "Объект изменили после того, как вы его открыли",
    "conflict.text": "Объект {id} слоя «{layer}» теперь в версии {v}. Сравните и выберите:",
    "conflict.field": "Поле", "conflict.start": "Когда вы открыли", "conflict.theirs": "Сейчас на сервере",
    "conflict.mine": "Ваше", "conflict.reload": "Загрузить их версию (мои правки отбросить)",
    "conflict.overwrite": "Перезаписать моей версией", "conflict.geometry": "геометрия",
    "conflict.changed": "изменена", "conflict.same": "не изменена",
    "history.title": "История: {layer} {id}", "history.revert": "Вернуть эту версию",
    "history.reverted": "Возвращена версия {v}", "history.by": "автор", "history.empty": "Истории нет",
    "history.confirm": "Сделать версию {v} текущей?",
    "error.network": "Сервер недоступен", "error.generic": "Ошибка: {msg}",
  },
};

let lang = localStorage.getItem("cdt.lang") || (navigator.language || "en").slice(0, 2);
if (!STRINGS[lang]) lang = "en";

export function currentLang() { return lang; }

export function setLang(value) {
  lang = STRINGS[value] ? value : "en";
  localStorage.setItem("cdt.lang", lang);
}

export function t(key, vars = {}) {
  const text = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

// Static texts of index.html carry data-i18n (text), data-i18n-title and data-i18n-placeholder.
export function translatePage(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
}
