// The editors' page: list, edit, preview, hit testing. No framework, no build step.
// Everything from the server is put in with textContent, except the preview's HTML, which the
// server sanitised (POST /api/render, the same renderer the agents' page shows).
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "kb-editor-token";
const FIELD_NAMES = {
  id: "编号", title: "标准问题", category: "分类", tags: "标签", similar: "相似问法",
  answer: "标准答复", basis: "依据", effective: "生效日期", effective_to: "失效日期",
  related: "相关文章",
};
const state = { articles: [], current: null, hitQuery: "" };

// A 422 names each problem by a stable `type` with its values in `ctx` (kb/errors.py
// FieldProblem; pydantic's own types for malformed input); the English `msg` is for API users.
// A type not listed here shows the server's sentence as it is.
const fieldName = (f) => FIELD_NAMES[f] || f;
const PROBLEMS = {
  required: (c, f) => `请填写${fieldName(c.field || f)}${(c.field || f) === "id" ? "（小写字母、数字和 -）" : ""}。`,
  missing: (c, f) => `请填写${fieldName(f)}。`,
  id_format: (c) => `编号「${c.id}」只能由小写字母、数字和 - 组成，如 repair-home-outage。`,
  id_changed: (c) => `编号不能修改（${c.old} 改为 ${c.new}）：请新建一篇文章，再删除这篇。`,
  answer_empty: () => "标准答复不能为空。",
  basis_in_answer: () => "答复中有「## 依据」一行，保存后会变成依据的开头：请把规定写在“依据”栏。",
  not_kept: (c, f) => `${fieldName(c.field || f)}保存后无法原样读回：请去掉特殊字符或换行。`,
  repeated_entry: (c, f) => `${fieldName(c.field || f)}中有重复的一项，请删去重复的。`,
  not_a_list: (c, f) => `${fieldName(c.field || f)}应是一组文字。`,
  not_a_date: (c, f) => `${fieldName(c.field || f)}应是日期，如 2025-01-01。`,
  ends_before_start: () => "失效日期早于生效日期。",
  expired: (c) => `失效日期 ${c.date} 已过，文章一保存就会失效：请选更晚的日期，或删除这篇文章。`,
  question_taken: (c) => `「${c.question}」已是 ${c.other}（${c.other_title}）的${c.other_kind === "title" ? "标准问题" : "相似问法"}：一个问题只能对应一篇文章，请从这里或那篇中删去。`,
  unknown_related: (c) => `「${c.id}」不是已有文章的编号。`,
  unknown_key: (c) => `不认识的字段「${c.name}」。`,
  string_too_long: (c) => `太长了：最多 ${c.max_length} 个字。`,
  too_long: (c) => `条目太多：最多 ${c.max_length} 项。`,
  string_type: () => "应填写文字。",
  list_type: () => "应是一组文字。",
  date_from_datetime_parsing: () => "应是日期，如 2025-01-01。",
  date_parsing: () => "应是日期，如 2025-01-01。",
  date_type: () => "应是日期，如 2025-01-01。",
  extra_forbidden: () => "不认识的字段。",
};

function problemText(d) {
  const field = d.loc?.[0] === "body" ? d.loc[1] : null;
  const word = PROBLEMS[d.type];
  return word ? word(d.ctx || {}, field) : d.msg;
}

// Talking to the server.

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

async function api(method, url, body, headers = {}) {
  const h = { ...headers };
  if (token()) h.Authorization = `Bearer ${token()}`;
  if (body !== undefined) h["Content-Type"] = "application/json";
  const res = await fetch(url, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  return { status: res.status, ok: res.ok, data, etag: (res.headers.get("ETag") || "").replace(/"/g, "") };
}

function detailText(data) {
  if (!data || data.detail === undefined) return "服务器未返回说明";
  if (typeof data.detail === "string") return data.detail;
  return data.detail.map((d) => `${FIELD_NAMES[d.loc?.[1]] || d.loc?.join(".")}：${problemText(d)}`).join("；");
}

function authProblem(res) {
  if (res.status === 401) return "需要编辑令牌：请在页面顶部输入令牌。";
  if (res.status === 403) return `令牌无效或未启用编辑：${detailText(res.data)}`;
  return null;
}

function setStatus(text) { $("status").textContent = text; }

// The token.

function showTokenState() {
  $("token-state").textContent = token() ? "已设置（仅本标签页）" : "未设置：只能查看和命中测试";
}

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const value = $("token").value.trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
  $("token").value = "";
  showTokenState();
  schedulePreview();
  loadList();  // the list needs a token too where the server guards reading (KB_AGENT_TOKENS)
});

// The list.

async function loadList() {
  const res = await api("GET", "/api/articles");
  if (!res.ok) { setStatus(authProblem(res) || `无法读取文章列表：${detailText(res.data)}`); return; }
  state.articles = res.data;
  const cats = [...new Set(state.articles.map((a) => a.category))].sort();
  const tags = [...new Set(state.articles.flatMap((a) => a.tags))].sort();
  fillSelect($("filter-category"), cats, "全部分类");
  fillSelect($("hit-category"), cats, "全部分类");
  fillSelect($("filter-tag"), tags, "全部标签");
  fillOptions($("categories"), cats.map((c) => [c, ""]));
  fillOptions($("article-ids"), state.articles.map((a) => [a.id, a.title]));
  renderList();
}

function fillSelect(select, values, all) {
  const keep = select.value;
  select.replaceChildren(new Option(all, ""), ...values.map((v) => new Option(v, v)));
  select.value = values.includes(keep) ? keep : "";
}

function fillOptions(datalist, pairs) {
  datalist.replaceChildren(...pairs.map(([value, label]) => {
    const o = document.createElement("option");
    o.value = value;
    if (label) o.label = label;
    return o;
  }));
}

function renderList() {
  const text = $("filter-text").value.trim().toLowerCase();
  const cat = $("filter-category").value;
  const tag = $("filter-tag").value;
  const shown = state.articles.filter((a) =>
    (!cat || a.category === cat) && (!tag || a.tags.includes(tag)) &&
    (!text || [a.id, a.title, ...a.similar].some((s) => s.toLowerCase().includes(text))));
  $("list-count").textContent = `共 ${shown.length} 篇`;
  $("list").replaceChildren(...shown.map((a) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.id = a.id;
    b.className = state.current?.id === a.id ? "current" : "";
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = a.title;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = `${a.category} · ${a.id} · 相似问法 ${a.similar.length}`;
    b.append(title, meta);
    b.addEventListener("click", () => openArticle(a.id));
    li.append(b);
    return li;
  }));
}

for (const id of ["filter-text", "filter-category", "filter-tag"]) {
  $(id).addEventListener("input", renderList);
}

// The form.

const splitList = (text, sep) => text.split(sep).map((s) => s.trim()).filter(Boolean);

function formBody() {
  return {
    id: $("f-id").value.trim() || null,
    title: $("f-title").value,
    category: $("f-category").value,
    tags: splitList($("f-tags").value, /[,，、]/),
    similar: splitList($("f-similar").value, /\n/),
    answer: $("f-answer").value,
    basis: $("f-basis").value,
    effective: $("f-effective").value || null,
    effective_to: $("f-effective-to").value || null,
    related: splitList($("f-related").value, /[,，\s]+/),
  };
}

function fillForm(a) {
  $("f-id").value = a?.id || "";
  $("f-id").readOnly = Boolean(a);
  $("f-title").value = a?.title || "";
  $("f-category").value = a?.category || "";
  $("f-tags").value = (a?.tags || []).join("，");
  $("f-similar").value = (a?.similar || []).join("\n");
  $("f-answer").value = a?.answer || "";
  $("f-basis").value = a?.basis || "";
  $("f-effective").value = a?.effective || "";
  $("f-effective-to").value = a?.effective_to || "";
  $("f-related").value = (a?.related || []).map((r) => r.id ?? r).join(", ");
  $("editing").textContent = a ? `正在编辑：${a.id}（版本 ${state.current.etag}）` : "新文章";
  $("delete").hidden = !a;
  $("reload").hidden = true;
  clearErrors();
  schedulePreview();
}

function clearErrors() {
  for (const p of document.querySelectorAll(".field-error")) p.textContent = "";
  for (const el of document.querySelectorAll(".invalid")) el.classList.remove("invalid");
  showMessage("");
  showSavedTests($("saved-tests"), null);
}

function showMessage(text, kind = "error") {
  const box = $("form-message");
  box.textContent = text;
  box.className = `message ${kind}`;
  box.hidden = !text;
}

function showErrors(detail) {
  clearErrors();
  if (!Array.isArray(detail)) { showMessage(detailText({ detail })); return; }
  const loose = [];
  for (const d of detail) {
    const field = d.loc?.[0] === "body" ? d.loc[1] : null;
    const slot = field && document.querySelector(`[data-error-for="${field}"]`);
    const text = problemText(d);
    if (slot) {
      slot.textContent = slot.textContent ? `${slot.textContent}；${text}` : text;
      document.querySelector(`[name="${field}"]`)?.classList.add("invalid");
    } else {
      loose.push(`${fieldName(field || d.loc?.join("."))}：${text}`);
    }
  }
  showMessage(loose.length ? loose.join("；") : "有字段未通过检查，请按提示修改。");
}

function titled(id) {
  const a = state.articles.find((x) => x.id === id);
  return a ? `「${a.title}」（${id}）` : id;
}

// A write runs the saved hit tests (content/_eval/saved.jsonl) again on the new index; the ones
// whose expected article is no longer first are listed beside the save result, so an edit that
// breaks one is seen at once. `check` is null when none are saved or nothing changed.
function showSavedTests(box, check) {
  box.replaceChildren();
  box.hidden = !check;
  if (!check) return;
  const more = check.skipped ? `（较早的 ${check.skipped} 条未检查）` : "";
  if (!check.broken.length) {
    box.className = "message ok";
    box.textContent = `已保存的命中测试 ${check.checked} 条全部仍把应命中文章排第一${more}。`;
    return;
  }
  box.className = "message warn";
  const head = document.createElement("p");
  head.textContent = `注意：这次修改后，${check.broken.length} 条已保存的命中测试不再把应命中文章排第一${more}：`;
  const list = document.createElement("ul");
  list.append(...check.broken.map((b) => {
    const li = document.createElement("li");
    li.dataset.query = b.query;
    const now = b.got ? `现排第一的是${titled(b.got)}` : "现在没有任何结果";
    const rank = b.rank ? `应命中文章排第 ${b.rank} 名` : "应命中文章不在前 10 名";
    li.textContent = `「${b.query}」应命中 ${b.expected.map(titled).join("、")}，${now}，${rank}。`;
    return li;
  }));
  box.append(head, list);
}

async function openArticle(id) {
  const res = await api("GET", `/api/articles/${encodeURIComponent(id)}`);
  if (!res.ok) { setStatus(`无法打开 ${id}：${detailText(res.data)}`); return; }
  state.current = { id, etag: res.etag };
  fillForm(res.data);
  showTab("edit");
  renderList();
}

$("new-article").addEventListener("click", () => { state.current = null; fillForm(null); showTab("edit"); $("f-id").focus(); });
$("reload").addEventListener("click", () => state.current && openArticle(state.current.id));

$("editor").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = formBody();
  const cur = state.current;
  const res = cur
    ? await api("PUT", `/api/articles/${encodeURIComponent(cur.id)}`, body, { "If-Match": `"${cur.etag}"` })
    : await api("POST", "/api/articles", body);
  if (res.ok) {
    state.current = { id: res.data.id, etag: res.data.etag };
    fillForm(res.data.article);
    const warn = res.data.warnings.length ? `；提醒：${res.data.warnings.join("；")}` : "";
    showMessage(`已保存到 ${res.data.path}，已可搜索（索引用时 ${res.data.index_ms} 毫秒）${warn}`, "ok");
    setStatus(`已保存 ${res.data.id}`);
    await loadList();
    showSavedTests($("saved-tests"), res.data.saved_tests);
    return;
  }
  const auth = authProblem(res);
  if (auth) { showMessage(auth); return; }
  if (res.status === 422) { showErrors(res.data.detail); return; }
  if (res.status === 412) {
    showMessage(`保存失败：这篇文章在您打开后已被修改（${detailText(res.data)}）。请重新加载最新版本，再做一次修改。`);
    $("reload").hidden = false;
    return;
  }
  showMessage(`保存失败（${res.status}）：${detailText(res.data)}`);
});

$("delete").addEventListener("click", async () => {
  const cur = state.current;
  if (!cur || !window.confirm(`确定删除文章 ${cur.id}？文件将从 content/ 中移除。`)) return;
  const res = await api("DELETE", `/api/articles/${encodeURIComponent(cur.id)}`, undefined, { "If-Match": `"${cur.etag}"` });
  if (!res.ok) {
    showMessage(authProblem(res) || `删除失败（${res.status}）：${detailText(res.data)}`);
    if (res.status === 412) $("reload").hidden = false;
    return;
  }
  state.current = null;
  fillForm(null);
  showMessage(`已删除 ${res.data.id}${res.data.warnings.length ? "；" + res.data.warnings.join("；") : ""}`, "ok");
  await loadList();
  showSavedTests($("saved-tests"), res.data.saved_tests);
});

// The preview: the server's renderer, so editors see what agents will see.

let previewTimer = null;
function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(renderPreview, 250);
}

async function renderPreview() {
  const markdown = $("f-answer").value;
  const box = $("preview");
  if (!markdown.trim()) { box.textContent = ""; return; }
  if (!token()) { box.textContent = "输入编辑令牌后显示预览。"; return; }
  const res = await api("POST", "/api/render", { markdown });
  if (res.ok) box.innerHTML = res.data.html; // sanitised by the server (nh3)
  else box.textContent = authProblem(res) || `无法预览：${detailText(res.data)}`;
}
$("f-answer").addEventListener("input", schedulePreview);

// Tabs.

function showTab(name) {
  $("editor").hidden = name !== "edit";
  $("hittest").hidden = name !== "hit";
  $("tab-edit").setAttribute("aria-selected", String(name === "edit"));
  $("tab-hit").setAttribute("aria-selected", String(name === "hit"));
  if (name === "hit") $("hit-q").focus();
}
$("tab-edit").addEventListener("click", () => showTab("edit"));
$("tab-hit").addEventListener("click", () => showTab("hit"));

// Hit testing: GET /api/hittest runs the agents' search and shows every score.

function targetId() {
  const value = $("hit-target").value.trim();
  const found = state.articles.find((a) => a.id === value || a.title === value);
  return found ? found.id : value;
}

async function runHitTest() {
  const q = $("hit-q").value.trim();
  if (!q) return;
  state.hitQuery = q;
  const params = new URLSearchParams({ q, k: "10" });
  if ($("hit-category").value) params.set("category", $("hit-category").value);
  if (targetId()) params.set("expected", targetId());
  const res = await api("GET", `/api/hittest?${params}`);
  if (!res.ok) { $("hit-summary").textContent = `测试失败：${detailText(res.data)}`; return; }
  const d = res.data;
  const top = d.results[0];
  let summary = top
    ? `第一名「${top.title}」融合分 ${top.score.toFixed(3)}，${d.confident ? "达到" : "未达到"}置信阈值 ${d.threshold}。`
    : "没有任何结果。";
  if (targetId() && d.expected) summary += ` 应命中文章排第 ${d.expected.rank} 名。`;
  else if (targetId() && !d.expected) summary += " 应命中文章不在前 50 名。";
  $("hit-summary").textContent = summary;
  $("hit-rows").replaceChildren(...d.results.map(hitRow));
  $("hit-table").hidden = false;
  $("hit-fix").hidden = false; // the target is the editor's choice: a miss's top hit is wrong
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function hitRow(h) {
  const tr = document.createElement("tr");
  tr.dataset.id = h.id;
  if (h.id === targetId()) tr.className = "target";
  const article = cell("");
  const title = document.createElement("strong");
  title.textContent = h.title;
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = `${h.id} · ${h.category}`;
  article.append(title, meta);
  const kinds = { title: "标准问题", similar: "相似问法", answer: "答复" };
  const matched = cell(`${kinds[h.matched.kind] || h.matched.kind}：${h.matched.text}`, "matched");
  const actions = cell("");
  const pick = document.createElement("button");
  pick.type = "button";
  pick.className = "secondary small";
  pick.textContent = "选为应命中";
  pick.addEventListener("click", () => { $("hit-target").value = h.id; runHitTest(); });
  const open = document.createElement("button");
  open.type = "button";
  open.className = "secondary small";
  open.textContent = "打开";
  open.addEventListener("click", () => openArticle(h.id));
  actions.append(pick, open);
  // What the fused score is made of, on hovering it: share x value of each signal.
  const names = { dense: "语义", chars: "字", words: "词", learned: "学习排序" };
  const score = cell(h.score.toFixed(3), "num");
  score.title = Object.entries(h.parts || {})
    .map(([n, p]) => `${p.share.toFixed(2)}×${names[n] || n} ${p.value.toFixed(3)}`).join(" + ");
  const learned = h.parts && h.parts.learned ? h.parts.learned.value.toFixed(3) : "—";
  tr.append(cell(String(h.rank)), article, score,
    cell(h.lexical.toFixed(3), "num"), cell(h.dense.toFixed(3), "num"), cell(learned, "num"),
    cell(h.confident ? "是" : "否", h.confident ? "yes" : "no"), matched, actions);
  return tr;
}

function hitMessage(text, kind = "error") {
  const p = $("hit-message");
  p.textContent = text;
  p.className = `message ${kind}`;
  p.hidden = !text;
}

$("hit-form").addEventListener("submit", (e) => {
  e.preventDefault();
  hitMessage("");
  showSavedTests($("hit-saved-tests"), null);
  runHitTest();
});
$("hit-target").addEventListener("change", () => state.hitQuery && runHitTest());

// From a miss to a fix in one step: the query becomes a similar question of the chosen article
// (GET for its version, PUT with If-Match), and the test runs again.
$("hit-add").addEventListener("click", async () => {
  const id = targetId();
  const q = state.hitQuery;
  if (!id || !q) { hitMessage("请先测试一个问法，并选择应命中的文章。"); return; }
  const got = await api("GET", `/api/articles/${encodeURIComponent(id)}`);
  if (!got.ok) { hitMessage(`找不到文章 ${id}：${detailText(got.data)}`); return; }
  const a = got.data;
  if (a.similar.includes(q) || a.title === q) { hitMessage(`「${q}」已是 ${id} 的问法。`, "ok"); return; }
  const body = {
    id: a.id, title: a.title, category: a.category, tags: a.tags, similar: [...a.similar, q],
    answer: a.answer, basis: a.basis, effective: a.effective, effective_to: a.effective_to,
    related: a.related.map((r) => r.id),
  };
  const res = await api("PUT", `/api/articles/${encodeURIComponent(id)}`, body, { "If-Match": `"${got.etag}"` });
  if (!res.ok) { hitMessage(authProblem(res) || `添加失败（${res.status}）：${detailText(res.data)}`); return; }
  hitMessage(`已把「${q}」加为 ${id} 的相似问法，已可搜索（索引用时 ${res.data.index_ms} 毫秒）。`, "ok");
  if (state.current?.id === id) { state.current.etag = res.data.etag; fillForm(res.data.article); }
  await loadList();
  showSavedTests($("hit-saved-tests"), res.data.saved_tests);
  await runHitTest();
});

$("hit-save").addEventListener("click", async () => {
  const id = targetId();
  if (!id || !state.hitQuery) { hitMessage("请先测试一个问法，并选择应命中的文章。"); return; }
  const res = await api("POST", "/api/eval-queries", { query: state.hitQuery, expected: [id] });
  if (!res.ok) { hitMessage(authProblem(res) || `保存失败：${detailText(res.data)}`); return; }
  hitMessage(`已存入评测集 ${res.data.path}（共 ${res.data.queries} 条），可用 kb eval 重跑。`, "ok");
});

// Start.

showTokenState();
fillForm(null);
loadList();
