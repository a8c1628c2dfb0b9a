// The agents' search page. Plain DOM, no build step, no external resources.
// Answer HTML comes sanitised from the server (kb/render.py); everything else is set as text.
"use strict";

const DEBOUNCE_MS = 150;
const RESULTS = 10;

const $ = (id) => document.getElementById(id);
const els = {};

// The agents' token, when the server asks for one (KB_AGENT_TOKENS): given once in the page
// address (/?token=...), kept for this tab in sessionStorage and sent as a header. It is taken
// out of the address at once, so it stays out of the history and off a shared screen. An
// editor's token entered on /editor in this tab works too.
const TOKEN_KEY = "kb-agent-token";
const EDITOR_TOKEN_KEY = "kb-editor-token";
const pageToken = (() => {
  const url = new URL(location.href);
  const given = url.searchParams.get("token");
  if (given !== null) {
    url.searchParams.delete("token");
    history.replaceState(history.state, "", url);
  }
  try {
    if (given) sessionStorage.setItem(TOKEN_KEY, given);
    return given || sessionStorage.getItem(TOKEN_KEY) || sessionStorage.getItem(EDITOR_TOKEN_KEY) || "";
  } catch {
    return given || "";  // storage refused (private mode): this page only
  }
})();

function authHeaders() {
  return pageToken ? { Authorization: `Bearer ${pageToken}` } : {};
}
window.kbAuthHeaders = authHeaders;  // for feedback.js

function tokenProblem(status) {
  if (status === 401) return "需要坐席令牌：请用管理员提供的带令牌的链接（…/?token=…）打开本页。";
  if (status === 403) return "坐席令牌无效：请向管理员索取新的带令牌的链接。";
  return null;
}
const state = {
  seq: 0,            // number of the latest search issued; older answers are dropped
  controller: null,  // aborts the search in flight when a newer one starts
  articleSeq: 0,
  timer: 0,          // pending debounce, 0 when none
  openOnRender: false,  // Enter was pressed before the answer arrived
  response: null,    // the search response on display
  selected: -1,
  shown: null,       // the result or article whose script is on display
  copiedTimer: 0,
};

document.addEventListener("DOMContentLoaded", () => {
  for (const id of [
    "q", "category", "status", "results", "answer", "hint", "no-answer", "article",
    "article-category", "article-uncertain", "article-source", "article-title",
    "article-warning", "copy", "copied", "script", "basis-box", "basis", "related-box", "related",
  ]) els[id] = $(id);

  $("search-form").addEventListener("submit", (e) => e.preventDefault());
  els.q.addEventListener("input", (e) => {
    if (!e.isComposing) scheduleSearch();  // wait for the IME to commit, not raw pinyin
  });
  els.q.addEventListener("compositionend", scheduleSearch);
  els.q.addEventListener("keydown", onSearchKey);
  els.category.addEventListener("change", () => search());
  els.results.addEventListener("click", (e) => {
    const item = e.target.closest("[role=option]");
    if (item) select(Number(item.dataset.index));
  });
  els.related.addEventListener("click", (e) => {
    const button = e.target.closest("button[data-id]");
    if (button) openArticle(button.dataset.id);
  });
  els.copy.addEventListener("click", copyScript);
  document.addEventListener("keydown", onGlobalKey);

  document.body.dataset.staleIgnored = "0";
  loadCategories();
  els.q.focus();
  if (els.q.value.trim()) search(); else showHint();
});

// Searching.

function scheduleSearch() {
  clearTimeout(state.timer);
  state.openOnRender = false;
  state.timer = setTimeout(search, DEBOUNCE_MS);
}

async function search() {
  clearTimeout(state.timer);
  state.timer = 0;
  const q = els.q.value;
  if (state.controller) state.controller.abort();
  const seq = ++state.seq;
  if (!q.trim()) {
    state.controller = null;
    showHint();
    return;
  }
  const controller = new AbortController();
  state.controller = controller;
  const params = new URLSearchParams({ q, k: String(RESULTS) });
  if (els.category.value) params.set("category", els.category.value);
  if (window.kbAgent) params.set("agent", window.kbAgent);  // set by feedback.js
  setStatus("搜索中…", "busy");
  try {
    const res = await fetch(`/api/search?${params}`, { signal: controller.signal, headers: authHeaders() });
    const body = await res.json().catch(() => ({}));
    if (seq !== state.seq) return dropStale();
    state.controller = null;
    if (res.ok) render(body);
    else if (res.status === 422) refuse(body.detail);
    else failed(tokenProblem(res.status) || failure(res.status), body.detail);
  } catch (err) {
    if (err.name === "AbortError") return;
    if (seq !== state.seq) return dropStale();
    failed("搜索失败：无法连接服务器，请检查网络后重试。", String(err));
  }
}

function dropStale() {
  // Counted so the page's behaviour under a late answer can be checked from outside.
  document.body.dataset.staleIgnored = String(Number(document.body.dataset.staleIgnored) + 1);
}

async function loadCategories() {
  try {
    const res = await fetch("/api/categories", { headers: authHeaders() });
    if (tokenProblem(res.status)) refused(tokenProblem(res.status));  // said before a search
    if (!res.ok) return;
    for (const c of await res.json()) {
      const option = document.createElement("option");
      option.value = c.name;
      option.textContent = `${c.name}（${c.articles}）`;
      els.category.append(option);
    }
  } catch {
    // The filter stays at 全部分类; searching still works.
  }
}

// Rendering a response.

function render(data) {
  state.articleSeq++;  // a related article still loading must not cover the new answer
  state.response = data;
  els.results.dataset.query = data.query;
  els.results.dataset.confident = String(data.confident);
  els.results.dataset.queryId = data.query_id || "";  // feedback.js reports against it
  els.results.replaceChildren(...data.results.map((r, i) => resultItem(r, i, data)));
  els.q.setAttribute("aria-expanded", String(data.results.length > 0));
  const n = data.results.length;
  if (!n) setStatus("没有找到相关条目。请换个说法，或清除分类筛选。", "warn");
  else if (data.confident) setStatus(`找到 ${n} 条，已显示最佳答复`);
  else setStatus(`找到 ${n} 条候选，未能确定唯一答案：已显示第 1 条，请核对`, "warn");
  // Not confident is not "no answer": on the labelled queries the top candidate is right in
  // most uncertain searches, so it is shown too, with a prompt to check it (UNSURE).
  select(0);
  if (state.openOnRender) {
    state.openOnRender = false;
    openSelected();
  }
}

function openSelected() {
  const data = state.response;
  if (!data || !data.results.length) return;
  if (state.selected < 0) select(0);
  els.answer.focus();
}

function resultItem(r, i, data) {
  const li = el("li", "result");
  li.id = `result-${i}`;
  li.setAttribute("role", "option");
  li.setAttribute("aria-selected", "false");
  li.dataset.index = String(i);
  li.dataset.id = r.id;
  li.dataset.testid = "result";

  const head = el("div", "result-head");
  head.append(el("span", "rank", String(i + 1)), el("span", "result-title", r.title));
  if (!data.confident) head.append(el("span", "badge uncertain", "不确定"));
  li.append(head);

  if (r.matched && (r.matched.kind === "similar" || r.matched.kind === "title")) {
    const m = el("div", "matched");
    m.dataset.testid = "matched";
    m.append(el("span", "matched-kind", r.matched.kind === "similar" ? "相似问" : "标准问"),
      el("span", "matched-text", r.matched.text));
    li.append(m);
  }
  li.append(el("div", "result-category", r.category));
  highlight(li.querySelector(".result-title"), data.terms);
  const matched = li.querySelector(".matched-text");
  if (matched) highlight(matched, data.terms);
  return li;
}

function select(index) {
  const data = state.response;
  if (!data) return;
  const n = data.results.length;
  state.selected = n ? Math.max(0, Math.min(index, n - 1)) : -1;
  for (const item of els.results.children) {
    const on = Number(item.dataset.index) === state.selected;
    item.setAttribute("aria-selected", String(on));
    item.classList.toggle("selected", on);
  }
  if (state.selected < 0) {
    els.q.removeAttribute("aria-activedescendant");
    showNoAnswer();
    return;
  }
  const item = $(`result-${state.selected}`);
  els.q.setAttribute("aria-activedescendant", item.id);
  item.scrollIntoView({ block: "nearest" });
  const r = data.results[state.selected];
  const warning = !data.confident ? UNSURE : r.confident ? "" : LOW_MATCH;
  showArticle(r, { warning, source: data.confident ? "" : "候选" });
}

// Only the top result can be confident. In an uncertain list any candidate may be the answer;
// in a confident one, the others are there for a caller who meant something else.
const UNSURE = "未能确定唯一答案：请先核对这条候选是否对应客户的问题，必要时看其他候选；" +
  "都不对应时请转专席或记录工单。";
const LOW_MATCH = "匹配度低：这不是可靠的标准答案，请核对后再答复。";

function showArticle(a, { warning = "", source = "" } = {}) {
  state.shown = a;
  els.hint.hidden = true;
  els["no-answer"].hidden = true;
  els.article.hidden = false;
  els.article.dataset.id = a.id;
  els["article-category"].textContent = a.category;
  els["article-uncertain"].hidden = !warning;
  els["article-warning"].hidden = !warning;
  els["article-warning"].textContent = warning;
  els["article-source"].textContent = source;
  els["article-title"].textContent = a.title;
  els.script.innerHTML = a.answer_html;  // sanitised server-side (nh3)
  els.basis.innerHTML = a.basis_html;    // likewise
  els["basis-box"].hidden = !a.basis_html;
  for (const link of els.article.querySelectorAll("#script a, #basis a")) link.target = "_blank";
  const terms = state.response ? state.response.terms : [];
  highlight(els.script, terms);
  highlight(els["article-title"], terms);
  els.copied.textContent = "";
  els.related.replaceChildren(...(a.related || []).map((x) => {
    const button = el("button", "related-link", x.title);
    button.type = "button";
    button.dataset.id = x.id;
    const li = el("li");
    li.append(button);
    return li;
  }));
  els["related-box"].hidden = !(a.related || []).length;
}

async function openArticle(id) {
  const seq = ++state.articleSeq;
  try {
    const res = await fetch(`/api/articles/${encodeURIComponent(id)}`, { headers: authHeaders() });
    const body = await res.json().catch(() => ({}));
    if (seq !== state.articleSeq) return dropStale();
    if (tokenProblem(res.status)) return refused(tokenProblem(res.status));
    if (!res.ok) {
      return articleFailed(res.status === 404 ? "该文章已删除或改名" : `HTTP ${res.status}`,
        body.detail);
    }
    showArticle(body, { source: "相关文章" });
    els.answer.focus({ preventScroll: true });
  } catch (err) {
    if (seq === state.articleSeq) articleFailed("无法连接服务器", String(err));
  }
}

function articleFailed(text, detail) {
  // The answer on screen still belongs to the question asked, so it stays; only the
  // related article did not open.
  console.warn("article not opened:", detail);
  setStatus(`相关文章打开失败：${text}。`, "error");
}

function showHint() {
  clearAnswer();
  els.hint.hidden = false;
  setStatus("");
}

function clearAnswer() {
  state.articleSeq++;  // a related article still loading must not come back either
  state.response = null;
  state.selected = -1;
  state.shown = null;  // copying does nothing until a search succeeds
  els.results.replaceChildren();
  for (const key of ["query", "queryId", "confident"]) delete els.results.dataset[key];
  els.q.setAttribute("aria-expanded", "false");
  els.q.removeAttribute("aria-activedescendant");
  els.hint.hidden = true;
  els["no-answer"].hidden = true;
  els.article.hidden = true;
}

function showNoAnswer() {
  state.shown = null;
  els.hint.hidden = true;
  els.article.hidden = true;
  els["no-answer"].hidden = false;
}

function refuse(detail) {
  // A refused query (empty after normalisation, too long) is a notice, not an error.
  state.openOnRender = false;
  clearAnswer();
  setStatus(reason(detail), "notice");
  els.status.title = typeof detail === "string" ? detail : JSON.stringify(detail);
}

function failed(text, detail) {
  // What is on screen answers an earlier question: left there, it could be read out, or
  // copied with Ctrl+Enter, as the answer to this one.
  state.openOnRender = false;
  clearAnswer();
  setStatus(text, "error");
  if (detail) {
    console.warn("search failed:", detail);
    els.status.title = typeof detail === "string" ? detail : JSON.stringify(detail);
  }
}

function failure(status) {
  // 503 is the server's "no usable index" (KBError); its English detail goes to the console.
  if (status === 503) return "搜索暂不可用：索引未建立或无法读取，请联系管理员。";
  return `搜索失败：服务器出错（HTTP ${status}），请稍后重试；如一直出现请联系管理员。`;
}

function refused(text) {
  // No token, or a wrong one: nothing the agent typed is at fault.
  state.openOnRender = false;
  setStatus(text, "error");
}

function reason(detail) {
  // The server's reasons are English, for developers; the agent gets the gist in Chinese.
  if (Array.isArray(detail)) {  // FastAPI's own checks, one entry per parameter at fault
    const fields = detail.map((d) => (d.loc || []).at(-1));
    if (fields.includes("q")) return "请输入问题的几个字再搜索。";
    if (fields.includes("category")) return "分类名称太长，无法按它筛选：请选“全部分类”后再搜索。";
    return "这次搜索无法处理，请换个说法再试。";
  }
  const text = String(detail ?? "");
  const long = text.match(/(\d+) characters; the limit is (\d+)/);
  if (long) return `问题太长：已输入 ${long[1]} 字，最多 ${long[2]} 字。请只输入关键内容。`;
  if (/empty/.test(text)) return "请输入问题中的文字（只有标点或空格无法搜索）。";
  return "这次搜索无法处理，请换个说法再试。";
}

function setStatus(text, kind = "") {
  els.status.textContent = text;
  els.status.className = `status ${kind}`.trim();
  els.status.removeAttribute("title");
}

// Keyboard.

function onSearchKey(e) {
  if (e.isComposing || e.keyCode === 229) return;  // keys that drive the IME
  if (e.ctrlKey || e.metaKey || e.altKey) return;   // shortcuts are handled globally
  const data = state.response;
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    if (!data || !data.results.length) return;
    const step = e.key === "ArrowDown" ? 1 : -1;
    select(Math.max(0, Math.min(state.selected + step, data.results.length - 1)));
  } else if (e.key === "Enter") {
    e.preventDefault();
    if (state.timer || state.controller) {
      state.openOnRender = true;  // open the answer to what is typed, not the one on screen
      if (state.timer) search();
    } else {
      openSelected();
    }
  }
}

function onGlobalKey(e) {
  if (e.isComposing) return;
  const copyKey = ((e.ctrlKey || e.metaKey) && e.key === "Enter") ||
    (e.altKey && !e.ctrlKey && e.code === "KeyC");
  if (copyKey) {
    e.preventDefault();
    copyScript();
  } else if (e.key === "Escape") {
    els.q.focus();
    els.q.select();
  } else if (e.key === "/" && !isTyping(e.target)) {
    e.preventDefault();
    els.q.focus();
  }
}

function isTyping(target) {
  return target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement ||
    target instanceof HTMLSelectElement;
}

// Copying the script.

async function copyScript() {
  if (!state.shown || els.article.hidden) return;
  const text = plainText(els.script);
  let ok = false;
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch {
      ok = false;
    }
  }
  if (!ok) ok = legacyCopy(text);
  els.copied.textContent = ok ? "已复制" : "复制失败，请选中话术后按 Ctrl+C";
  els.copied.classList.toggle("failed", !ok);
  clearTimeout(state.copiedTimer);
  state.copiedTimer = setTimeout(() => { els.copied.textContent = ""; }, 2500);
}

const BLOCKS = new Set(["P", "DIV", "H2", "H3", "H4", "BLOCKQUOTE", "PRE", "TABLE", "TR", "HR"]);

// The script as text for the clipboard, one line per paragraph or list item. innerText would
// do, but it drops the numbers of an ordered list (CSS draws them, they are not text), and
// step 1, 2, 3 of a script must reach a work order or a chat as 1, 2, 3.
function plainText(root) {
  const lines = [];
  let text = "";    // the line being built
  let prefix = "";  // what starts it: a list marker, or the indent of a list item's next line
  let indent = "";
  const flush = () => {
    if (text.trim()) {
      lines.push(prefix + text.trim());
      prefix = indent;
    }
    text = "";
  };
  const walk = (node) => {
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        const pre = child.parentElement.closest("pre");
        text += pre ? child.nodeValue : child.nodeValue.replace(/\s+/g, " ");
      } else if (child.nodeName === "BR") {
        flush();
      } else if (child.nodeName === "LI") {
        flush();
        const list = child.parentElement;
        const marker = list.nodeName === "OL" ? `${[...list.children].indexOf(child) + 1}. ` : "- ";
        const outer = indent;
        prefix = outer + marker;
        indent = outer + " ".repeat(marker.length);  // nested lists and later lines line up
        walk(child);
        flush();
        indent = prefix = outer;
      } else if (child.nodeName === "TD" || child.nodeName === "TH") {
        if (child.previousElementSibling) text = text.trimEnd() + "\t";  // as innerText does
        walk(child);
      } else if (BLOCKS.has(child.nodeName)) {
        flush();
        walk(child);
        flush();
      } else if (child.nodeType === Node.ELEMENT_NODE) {
        walk(child);  // inline: strong, em, a, mark, code
      }
    }
  };
  walk(root);
  flush();
  return lines.join("\n");
}

function legacyCopy(text) {
  // Plain-HTTP deployments have no navigator.clipboard; execCommand still works there.
  const focused = document.activeElement;
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.cssText = "position:fixed;top:0;left:-9999px;opacity:0";
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  if (focused) focused.focus({ preventScroll: true });
  return ok;
}

// Highlighting: wrap matches in <mark> by walking text nodes, never by editing HTML strings.

function highlight(root, terms) {
  const pattern = termPattern(terms || []);
  if (!pattern || !root) return;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) => (node.parentElement.closest("mark")
      ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
  });
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  for (const node of nodes) {
    const text = node.nodeValue;
    pattern.lastIndex = 0;
    let match;
    let last = 0;
    let fragment = null;
    while ((match = pattern.exec(text))) {
      fragment = fragment || document.createDocumentFragment();
      fragment.append(text.slice(last, match.index), el("mark", "", match[0]));
      last = match.index + match[0].length;
    }
    if (fragment) {
      fragment.append(text.slice(last));
      node.replaceWith(fragment);
    }
  }
}

function termPattern(terms) {
  const clean = [...new Set(terms.map((t) => t.trim()).filter(Boolean))];
  // Single characters light up half the script; use them only when nothing longer matched.
  const long = clean.filter((t) => [...t].length > 1);
  const chosen = (long.length ? long : clean).sort((a, b) => b.length - a.length);
  if (!chosen.length) return null;
  const escaped = chosen.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(escaped.join("|"), "gi");
}

function el(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}
