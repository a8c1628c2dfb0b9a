// The agents' feedback on an answer (有用 / 没用) and what they did with it (opened, copied),
// reported to the query log. Kept apart from app.js: it only watches the page app.js draws.
//   - the search on display: #results[data-query-id] (set by app.js from the response)
//   - the answer on display: #article[data-id]; a copy: #copied showing 已复制
// The agent id comes from the page address (?agent=A001 or ?agent=张三, remembered) and goes
// with every call.
"use strict";

(() => {
  const AGENT_KEY = "kb.agent";
  // The server's rule (server/log_routes.py AGENT_RE; Python's \w is letters, digits and _ in
  // any script): an id it would drop is neither remembered nor sent, so a mistyped link cannot
  // follow the agent into every later tab.
  const AGENT_RE = /^[\p{L}\p{N}_.@-]{1,64}$/u;
  const valid = (id) => Boolean(id) && AGENT_RE.test(id);
  const given = new URLSearchParams(location.search).get("agent");
  const fromUrl = valid(given) ? given : "";
  if (given && !fromUrl) console.warn("agent id ignored (letters, digits, _.@-; 1-64):", given);
  try {
    if (fromUrl) localStorage.setItem(AGENT_KEY, fromUrl);
    const kept = localStorage.getItem(AGENT_KEY) || "";
    if (kept && !valid(kept)) localStorage.removeItem(AGENT_KEY);  // kept before this check
    window.kbAgent = fromUrl || (valid(kept) ? kept : "");
  } catch {
    window.kbAgent = fromUrl;  // storage refused (private mode): this page only
  }

  const fb = { queryId: "", articleId: "", userAction: false, sent: new Set() };
  const $ = (id) => document.getElementById(id);

  document.addEventListener("DOMContentLoaded", () => {
    const box = $("feedback");
    const results = $("results");
    const article = $("article");
    if (!box || !results || !article) return;

    // An answer shown because the agent chose it (click, arrows, Enter, a related link) is
    // "opened"; the first answer shown by itself after a search is not.
    // Choosing the answer already on display changes nothing on the page: a moment later, the
    // choice still pending means that answer was opened.
    const chose = () => {
      fb.userAction = true;
      setTimeout(() => {
        if (!fb.userAction || !fb.queryId || !fb.articleId) return;
        fb.userAction = false;
        send("/api/events", { kind: "opened" });
      }, 600);
    };
    results.addEventListener("click", chose, true);
    $("related")?.addEventListener("click", chose, true);
    $("q")?.addEventListener("keydown", (e) => {
      if (["ArrowDown", "ArrowUp", "Enter"].includes(e.key)) chose();
      else fb.userAction = false;
    }, true);

    const update = () => {
      const queryId = results.dataset.queryId || "";
      const articleId = article.hidden ? "" : article.dataset.id || "";
      if (queryId === fb.queryId && articleId === fb.articleId) return;
      fb.queryId = queryId;
      fb.articleId = articleId;
      reset(box);
      box.hidden = !(queryId && articleId);
      if (queryId && articleId && fb.userAction) send("/api/events", { kind: "opened" });
      fb.userAction = false;
    };
    const watch = { attributes: true, attributeFilter: ["data-id", "data-query-id", "hidden"] };
    new MutationObserver(update).observe(results, watch);
    new MutationObserver(update).observe(article, watch);

    const copied = $("copied");
    if (copied) {
      new MutationObserver(() => {
        if (copied.textContent === "已复制" && fb.queryId && fb.articleId) {
          send("/api/events", { kind: "copied" });
        }
      }).observe(copied, { childList: true, characterData: true, subtree: true });
    }

    box.addEventListener("click", (e) => {
      const button = e.target.closest("button[data-useful]");
      if (!button) return;
      const useful = button.dataset.useful === "true";
      verdict(box, useful, null);
      $("feedback-form").hidden = useful;
      if (!useful) $("feedback-comment").focus();
    });
    $("feedback-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const comment = $("feedback-comment").value.trim().slice(0, 500);
      verdict(box, false, comment || null);
      $("feedback-form").hidden = true;
    });
  });

  function reset(box) {
    for (const b of box.querySelectorAll("button[data-useful]")) b.setAttribute("aria-pressed", "false");
    $("feedback-form").hidden = true;
    $("feedback-comment").value = "";
    $("feedback-done").textContent = "";
  }

  async function verdict(box, useful, comment) {
    for (const b of box.querySelectorAll("button[data-useful]")) {
      b.setAttribute("aria-pressed", String(b.dataset.useful === String(useful)));
    }
    const body = { useful };
    if (comment) body.comment = comment;
    const ok = await send("/api/feedback", body);
    $("feedback-done").textContent = !ok ? "反馈未能记录，请稍后再试"
      : comment ? "已记录说明，谢谢" : useful ? "已记录：有用" : "已记录：没用。可补充说明：";
    $("feedback-done").classList.toggle("failed", !ok);
  }

  async function send(path, extra) {
    const body = { query_id: fb.queryId, article_id: fb.articleId, ...extra };
    const key = `${path} ${JSON.stringify(body)}`;
    if (path === "/api/events" && fb.sent.has(key)) return true;  // once per search and answer
    fb.sent.add(key);
    const headers = { "Content-Type": "application/json", ...(window.kbAuthHeaders?.() || {}) };
    // In the address, as the search sends it, not as X-Agent-Id: a header value must be
    // Latin-1, and fetch throws on 张三.
    const url = window.kbAgent ? `${path}?agent=${encodeURIComponent(window.kbAgent)}` : path;
    try {
      const res = await fetch(url, { method: "POST", headers, body: JSON.stringify(body) });
      return res.ok;
    } catch {
      return false;  // the log is best effort; the agent's work goes on
    }
  }
})();
