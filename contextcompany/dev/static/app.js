// The contextcompany dev viewer: three pages (runs, a run, a session) drawn from the JSON API.
//
// Rule: everything that comes from a span is put into the page as text (text nodes, textContent,
// attribute values), never as HTML. `el()` below is the only way this file builds elements.
"use strict";

(function () {
  const POLL_MS = 1000;
  const main = document.getElementById("main");
  const crumbs = document.getElementById("crumbs");
  const live = document.getElementById("live");

  // --- building elements ------------------------------------------------------------------------

  // el("div.a.b", {title: "x", onclick: f}, "text", child, [more]) -> <div class="a b">.
  // Strings become text nodes; attributes are set with setAttribute or as properties (on*): no HTML.
  function el(spec, attrs, ...children) {
    const [tag, ...classes] = spec.split(".");
    const node = document.createElement(tag || "div");
    if (classes.length) node.className = classes.join(" ");
    if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
      children.unshift(attrs);
      attrs = null;
    }
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      // Through the CSSOM: the Content-Security-Policy refuses style="" attributes.
      else if (key === "style") Object.assign(node.style, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) append(node, child);
      else if (child instanceof Node) node.appendChild(child);
      else node.appendChild(document.createTextNode(String(child)));
    }
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  // --- formatting -------------------------------------------------------------------------------

  const numberFormat = new Intl.NumberFormat("en-US");
  function tokens(n) {
    return n === null || n === undefined ? "" : numberFormat.format(n);
  }
  function cost(usd) {
    if (usd === null || usd === undefined) return "";
    return "$" + usd.toFixed(6);
  }
  function duration(ms) {
    if (ms === null || ms === undefined) return "";
    return ms < 1000 ? ms.toFixed(1) + " ms" : (ms / 1000).toFixed(2) + " s";
  }
  function clock(ms) {
    const d = new Date(ms);
    const pad = (n, w = 2) => String(n).padStart(w, "0");
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    const today = new Date();
    if (d.toDateString() === today.toDateString()) return time;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
  }
  function plural(n, word) {
    return `${tokens(n)} ${word}${n === 1 ? "" : "s"}`;
  }
  function pretty(value) {
    if (typeof value === "string") return value;
    try {
      return JSON.stringify(value, null, 2);
    } catch (e) {
      return String(value);
    }
  }
  function stepsText(run) {
    // "4 steps, 3 priced": every step counted, and how many of them have a price.
    let text = plural(run.steps, "step");
    if (run.steps && run.priced !== run.steps) text += `, ${tokens(run.priced)} priced`;
    return text;
  }

  // --- fetching ---------------------------------------------------------------------------------

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || `${response.status}`);
    return data;
  }

  // The store's version the page shows; every answer carries the version it was read at.
  let shownVersion = null;
  let pollTimer = null;
  function poll(fn) {
    if (pollTimer) clearInterval(pollTimer);
    let busy = false;
    pollTimer = setInterval(async () => {
      if (busy) return;
      busy = true;
      try {
        const { version } = await getJSON("/api/version");
        live.classList.remove("off");
        if (version !== shownVersion) await fn();
      } catch (e) {
        live.classList.add("off"); // the dev server stopped: keep what is shown
      } finally {
        busy = false;
      }
    }, POLL_MS);
  }

  function setCrumbs(...parts) {
    clear(crumbs);
    parts.forEach((part, i) => {
      if (i) crumbs.appendChild(el("span.sep", "/"));
      crumbs.appendChild(part);
    });
  }

  function statusDot(status) {
    return el(`span.dot.${status === "error" ? "err" : "ok"}`, { title: status });
  }

  function link(href, text, cls) {
    return el("a" + (cls ? "." + cls : ""), { href }, text);
  }

  // --- the runs list ----------------------------------------------------------------------------

  const FILTERS = ["q", "status", "agent", "model", "session"];

  // [title, class, group]: the four token columns sit under one "Tokens" heading.
  function runColumns() {
    return [
      ["Start", "start"],
      ["", "st"],
      ["Agent", "agent"],
      ["Prompt", "prompt"],
      ["Steps", "num"],
      ["LLM", "num", null, "LLM calls"],
      ["Tools", "num", null, "tool calls"],
      ["In", "num", "Tokens", "input tokens (cached and cache writes included)"],
      ["Cached", "num", "Tokens", "input tokens read from a cache"],
      ["Write", "num", "Tokens", "input tokens written to a cache"],
      ["Out", "num", "Tokens", "output tokens"],
      ["Cost", "num"],
      ["Duration", "num"],
      ["Session", "session"],
      ["Models", "models"],
    ];
  }

  function runsHead() {
    const columns = runColumns();
    const top = [];
    const bottom = [];
    for (let i = 0; i < columns.length; i++) {
      const [title, cls, group, tip] = columns[i];
      if (!group) {
        top.push(el("th." + cls, { rowspan: 2, title: tip || null }, title));
        continue;
      }
      if (i === 0 || columns[i - 1][2] !== group) {
        const span = columns.filter((c) => c[2] === group).length;
        top.push(el("th.group", { colspan: span }, group));
      }
      bottom.push(el("th." + cls, { title: tip || null }, title));
    }
    return el("thead", el("tr", top), el("tr", bottom));
  }

  function runRow(run, fresh) {
    const href = "/runs/" + encodeURIComponent(run.run_id);
    const u = run.usage;
    const row = el(
      "tr.run" + (fresh ? ".fresh" : "") + (run.status === "error" ? ".failed" : ""),
      { dataset: { runId: run.run_id } },
      el("td.start", { title: new Date(run.start_ms).toISOString() }, link(href, clock(run.start_ms))),
      el("td.st", statusDot(run.status)),
      el(
        "td.agent",
        el("span.agent-name", run.agent || run.name),
        run.parent_run ? el("span.sub", { title: "nested in run " + run.parent_run }, " nested") : null
      ),
      el(
        "td.prompt",
        { title: run.prompt || "" },
        el("span.ptext", run.prompt || ""),
        run.error ? el("span.errtext", run.error) : null,
        run.feedback ? el("span.fb", "★ " + run.feedback) : null
      ),
      el("td.num", { title: stepsText(run) }, tokens(run.steps), run.priced !== run.steps ? el("span.sub", ` (${tokens(run.priced)} priced)`) : null),
      el("td.num", tokens(run.llm_calls)),
      el("td.num", tokens(run.tools)),
      el("td.num", tokens(u.input)),
      el("td.num", tokens(u.cache_read)),
      el("td.num", tokens(u.cache_write)),
      el("td.num", tokens(u.output)),
      el("td.num.cost", cost(run.cost), run.unpriced ? el("span.warn", { title: `${run.unpriced} LLM call(s) without a price` }, " +?") : null),
      el("td.num", duration(run.duration_ms)),
      el("td.session", run.session ? link("/sessions/" + encodeURIComponent(run.session), run.session) : ""),
      el("td.models", { title: run.models.join(", ") }, run.models.join(", "))
    );
    row.addEventListener("click", (event) => {
      if (event.target.closest("a") || window.getSelection().toString()) return;
      location.href = href;
    });
    return row;
  }

  function runsTable(runs, fresh) {
    return el(
      "table.runs",
      runsHead(),
      el(
        "tbody",
        runs.map((run) => runRow(run, fresh && fresh.has(run.run_id)))
      )
    );
  }

  function select(name, label, values, current) {
    const node = el(
      "select",
      { name, "aria-label": label },
      el("option", { value: "" }, label),
      values.map((v) => el("option", { value: v, selected: v === current }, v))
    );
    if (current && !values.includes(current)) node.appendChild(el("option", { value: current, selected: true }, current));
    return node;
  }

  const PAGE = 100;

  function queryFor(state, before) {
    const q = new URLSearchParams();
    for (const key of FILTERS) if (state[key]) q.set(key, state[key]);
    if (before) q.set("before", before);
    q.set("limit", String(PAGE));
    return "/api/runs?" + q.toString();
  }

  async function runsPage() {
    document.title = "Runs · contextcompany dev";
    setCrumbs(el("span", "Runs"));
    const params = new URLSearchParams(location.search);
    const state = {};
    for (const key of FILTERS) state[key] = params.get(key) || "";
    // Both requests at once: the list does not wait for the filters' values.
    const firstPage = getJSON(queryFor(state));
    let facets = { agents: [], models: [], sessions: [] };
    try {
      facets = await getJSON("/api/facets");
    } catch (e) {
      /* the filters still work from the URL */
    }

    const search = el("input.search", {
      type: "search",
      name: "q",
      placeholder: "Search prompts and responses",
      value: state.q,
      "aria-label": "search",
    });
    const status = el(
      "select",
      { name: "status", "aria-label": "status" },
      el("option", { value: "" }, "Any status"),
      el("option", { value: "ok", selected: state.status === "ok" }, "ok"),
      el("option", { value: "error", selected: state.status === "error" }, "error")
    );
    const agent = select("agent", "Any agent", facets.agents, state.agent);
    const model = select("model", "Any model", facets.models, state.model);
    const session = select("session", "Any session", facets.sessions, state.session);
    const count = el("span.count");
    const clearButton = el("button.clear", { type: "button" }, "Clear");
    const toolbar = el("div.toolbar", search, status, agent, model, session, clearButton, count);
    const body = el("div.list");
    const more = el("button.more", { type: "button", hidden: true }, "Older runs");
    clear(main);
    append(main, [toolbar, body, more]);

    let shown = [];
    let known = new Set();

    const query = (before) => queryFor(state, before);

    // Answers can arrive out of order (a filter changed twice quickly, a live update under way): only
    // the answer to the latest request is drawn, so the list always matches the filters shown.
    let latest = 0;
    async function load(pending) {
      const request = ++latest;
      const data = await (pending || getJSON(query()));
      if (request !== latest) return;
      shownVersion = data.version;
      const fresh = new Set(known.size ? data.runs.filter((r) => !known.has(r.run_id)).map((r) => r.run_id) : []);
      // Keep older pages the user loaded; the first page is replaced by the newest.
      const firstIds = new Set(data.runs.map((r) => r.run_id));
      const oldest = data.runs.length ? data.runs[data.runs.length - 1].start_ns : null;
      const tail = shown.filter((r) => !firstIds.has(r.run_id) && oldest !== null && r.start_ns < oldest && shown.length > PAGE);
      shown = data.runs.concat(tail);
      for (const r of shown) known.add(r.run_id);
      render(fresh, data.runs.length === PAGE);
    }

    function render(fresh, full) {
      clear(body);
      const filtered = FILTERS.some((k) => state[k]);
      if (!shown.length) {
        body.appendChild(
          el(
            "div.empty",
            filtered
              ? "No run matches these filters."
              : [
                  el("p", "No runs yet. Point an application at this server:"),
                  el("pre.hint", `OTEL_EXPORTER_OTLP_ENDPOINT=${location.origin} python my_agent.py`),
                  el("p", "or start one through it: "),
                  el("pre.hint", "python -m contextcompany dev -- python my_agent.py"),
                ]
          )
        );
      } else {
        body.appendChild(runsTable(shown, fresh));
      }
      count.textContent = plural(shown.length, "run") + (full ? "+" : "");
      more.hidden = !full;
    }

    more.addEventListener("click", async () => {
      const last = shown[shown.length - 1];
      const data = await getJSON(query(last.cursor));
      shown = shown.concat(data.runs.filter((r) => !known.has(r.run_id)));
      for (const r of data.runs) known.add(r.run_id);
      render(new Set(), data.runs.length === PAGE);
    });

    function apply() {
      state.q = search.value.trim();
      state.status = status.value;
      state.agent = agent.value;
      state.model = model.value;
      state.session = session.value;
      const q = new URLSearchParams();
      for (const key of FILTERS) if (state[key]) q.set(key, state[key]);
      history.replaceState(null, "", q.toString() ? "/?" + q.toString() : "/");
      shown = [];
      known = new Set();
      load();
    }
    let typing = null;
    search.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(apply, 200);
    });
    for (const control of [status, agent, model, session]) control.addEventListener("change", () => apply());
    clearButton.addEventListener("click", () => {
      search.value = "";
      for (const control of [status, agent, model, session]) control.value = "";
      apply();
    });

    await load(firstPage);
    performance.mark("tcc:runs-drawn"); // read by bench/bench_viewer.py
    poll(load);
  }

  // --- content: messages, parts, JSON -------------------------------------------------------------

  function textBlock(text, cls) {
    return el("pre.text" + (cls ? "." + cls : ""), text);
  }

  function jsonBlock(value) {
    return el("pre.json", pretty(value));
  }

  function renderPart(part) {
    if (part === null || typeof part !== "object") return textBlock(String(part));
    const type = part.type;
    if (type === "text") return textBlock(typeof part.content === "string" ? part.content : pretty(part.content));
    if (type === "tool_call") {
      return el(
        "div.part.call",
        el("div.part-head", el("span.tag.tool", "tool call"), " ", el("b", part.name || ""), part.id ? el("span.sub", " " + part.id) : null),
        part.arguments !== undefined ? jsonBlock(part.arguments) : null
      );
    }
    if (type === "tool_call_response") {
      return el(
        "div.part.call",
        el("div.part-head", el("span.tag.tool", "tool result"), part.id ? el("span.sub", " " + part.id) : null),
        jsonBlock(part.response !== undefined ? part.response : part.result)
      );
    }
    if (type === "reasoning" || type === "thinking") {
      return el("details.part", el("summary", el("span.tag", type)), textBlock(part.content || pretty(part)));
    }
    return el("div.part", el("div.part-head", el("span.tag", type || "part")), jsonBlock(part));
  }

  function renderMessage(message) {
    if (message === null || typeof message !== "object") return textBlock(String(message));
    const role = message.role || "message";
    const parts = Array.isArray(message.parts)
      ? message.parts.map(renderPart)
      : message.content !== undefined
        ? [typeof message.content === "string" ? textBlock(message.content) : jsonBlock(message.content)]
        : [jsonBlock(message)];
    return el(
      "div.msg.role-" + String(role).replace(/[^a-z_]/gi, ""),
      el("div.role", role, message.finish_reason ? el("span.finish", { title: "finish reason" }, message.finish_reason) : null),
      el("div.body", parts)
    );
  }

  // A messages value: a list of messages, a list of parts (system instructions), text, or anything.
  function renderMessages(value) {
    if (value === null || value === undefined) return null;
    if (typeof value === "string") return textBlock(value);
    if (Array.isArray(value)) {
      const isParts = value.length && value.every((v) => v && typeof v === "object" && !("role" in v) && "type" in v);
      if (isParts) return el("div.msg.role-system", el("div.role", "system"), el("div.body", value.map(renderPart)));
      return el("div.msgs", value.map(renderMessage));
    }
    return jsonBlock(value);
  }

  // A <details> whose content is built the first time it is opened: a 200-step run has 400 of them.
  function lazyDetails(cls, summary, build) {
    const node = el("details" + cls, el("summary" + (cls === ".section" ? ".section-title" : ""), summary));
    let built = false;
    node.addEventListener("toggle", () => {
      if (node.open && !built) {
        built = true;
        append(node, [build()]);
      }
    });
    return node;
  }

  function section(title, ...content) {
    const body = content.filter((c) => c !== null && c !== undefined);
    if (!body.length) return null;
    return el("div.section", el("div.section-title", title), body);
  }

  function keyValues(entries, cls) {
    const rows = entries.filter(([, v]) => v !== null && v !== undefined && v !== "");
    if (!rows.length) return null;
    return el(
      "table.kv" + (cls ? "." + cls : ""),
      el("tbody", rows.map(([k, v]) => el("tr", el("th", k), el("td", v instanceof Node ? v : typeof v === "string" ? v : pretty(v)))))
    );
  }

  function usageLine(u, extra) {
    if (!u) return null;
    const parts = [];
    if (u.input !== null && u.input !== undefined) parts.push(`${tokens(u.input)} in`);
    if (u.cache_read) parts.push(`${tokens(u.cache_read)} cached`);
    if (u.cache_write) parts.push(`${tokens(u.cache_write)} cache write`);
    if (u.output !== null && u.output !== undefined) parts.push(`${tokens(u.output)} out`);
    if (u.reasoning) parts.push(`${tokens(u.reasoning)} reasoning`);
    if (extra) parts.push(extra);
    return parts.join(" · ");
  }

  function errorBox(error) {
    if (!error) return null;
    const stack = (error.exceptions || []).map((e) => e.stacktrace).filter(Boolean);
    return el(
      "div.error-box",
      el("div.error-head", el("span.error-type", error.type || "error"), error.message ? el("span.error-message", error.message) : null),
      stack.length ? el("details", el("summary", "stack trace"), textBlock(stack[stack.length - 1], "stack")) : null
    );
  }

  // --- the run page -------------------------------------------------------------------------------

  const KIND_LABEL = { run: "agent", step: "LLM", tool: "tool", feedback: "feedback", other: "span" };

  function spanTitle(span) {
    if (span.kind === "step") return span.model || span.name;
    if (span.kind === "tool") return (span.tool && span.tool.name) || span.name;
    if (span.kind === "run") return span.agent || span.name;
    if (span.kind === "feedback") return (span.feedback && span.feedback.label) || "feedback";
    return span.name;
  }

  function orderTree(spans) {
    // Depth-first, children by start time; spans whose parent is not here hang under the run.
    const root = spans[0];
    const ids = new Set(spans.map((s) => s.id));
    const children = new Map();
    for (const span of spans.slice(1)) {
      const parent = ids.has(span.parent) && span.parent !== span.id ? span.parent : root.id;
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(span);
    }
    const out = [];
    const seen = new Set();
    (function walk(span, depth) {
      if (seen.has(span.id)) return;
      seen.add(span.id);
      out.push({ span, depth });
      const kids = (children.get(span.id) || []).sort((a, b) => a.start_us - b.start_us);
      for (const kid of kids) walk(kid, depth + 1);
    })(root, 0);
    return out;
  }

  function waterfall(ordered, total) {
    const rows = ordered.map(({ span, depth }) => {
      const left = total > 0 ? Math.max(0, (span.start_us / total) * 100) : 0;
      const width = total > 0 ? Math.max(0.3, (span.duration_us / total) * 100) : 100;
      const meta =
        span.kind === "step"
          ? [usageLine(span.usage) || "", cost(span.cost)].filter(Boolean).join(" · ")
          : span.kind === "tool"
            ? ""
            : span.scope && span.kind === "other"
              ? span.scope
              : "";
      const row = el(
        "div.wf-row.k-" + span.kind + (span.status === "error" ? ".failed" : ""),
        { dataset: { span: span.id }, tabindex: 0, role: "button", title: span.name },
        el(
          "div.wf-name",
          { style: { paddingLeft: `${depth * 14 + 6}px` } },
          el("span.kind.k-" + span.kind, KIND_LABEL[span.kind] || span.kind),
          el("span.wf-title", spanTitle(span)),
          span.status === "error" ? el("span.dot.err") : null
        ),
        el("div.wf-meta", meta),
        el("div.wf-dur", duration(span.duration_us / 1000)),
        el(
          "div.wf-track",
          el("div.wf-bar.k-" + span.kind + (span.status === "error" ? ".failed" : ""), {
            style: { left: `${left.toFixed(3)}%`, width: `${Math.min(width, 100 - left).toFixed(3)}%` },
          })
        )
      );
      const go = () => {
        const card = document.getElementById("span-" + span.id);
        if (!card) return;
        document.querySelectorAll(".card.selected").forEach((c) => c.classList.remove("selected"));
        card.classList.add("selected");
        card.scrollIntoView({ block: "start", behavior: "smooth" });
      };
      row.addEventListener("click", go);
      row.addEventListener("keydown", (e) => {
        if (e.key === "Enter") go();
      });
      return row;
    });
    return el("div.waterfall", rows);
  }

  function spanCard(span, depth) {
    const head = el(
      "div.card-head",
      el("span.kind.k-" + span.kind, KIND_LABEL[span.kind] || span.kind),
      el("span.card-title", spanTitle(span)),
      span.kind === "step" && span.request_model && span.response_model && span.request_model !== span.response_model
        ? el("span.sub", `asked for ${span.request_model}`)
        : null,
      el("span.grow"),
      span.kind === "step" ? el("span.meta", usageLine(span.usage) || "no token counts") : null,
      span.cost !== null && span.cost !== undefined
        ? el("span.meta.cost", cost(span.cost), span.cost_source ? el("span.sub", ` ${span.cost_source}`) : null)
        : span.cost_source === "no_price"
          ? el("span.meta.warn", "no price")
          : null,
      el("span.meta", duration(span.duration_us / 1000)),
      el("span.meta.sub", "+" + duration(span.start_us / 1000)),
      statusDot(span.status)
    );
    const body = [];
    body.push(errorBox(span.error));
    if (span.kind === "step" || (span.kind === "other" && (span.input || span.output))) {
      body.push(section("System instructions", renderMessages(span.system)));
      body.push(section("Input", renderMessages(span.input)));
      const reasons = span.finish_reasons.length ? `finish: ${span.finish_reasons.join(", ")}` : null;
      body.push(section(reasons ? `Output · ${reasons}` : "Output", renderMessages(span.output)));
      if (span.tool_definitions !== null && span.tool_definitions !== undefined) {
        const count = Array.isArray(span.tool_definitions) ? ` (${span.tool_definitions.length})` : "";
        body.push(lazyDetails(".section", "Tool definitions" + count, () => jsonBlock(span.tool_definitions)));
      }
    }
    if (span.tool) {
      body.push(
        section(
          "Arguments",
          span.tool.arguments !== null && span.tool.arguments !== undefined ? jsonBlock(span.tool.arguments) : null
        )
      );
      body.push(section("Result", span.tool.result !== null && span.tool.result !== undefined ? jsonBlock(span.tool.result) : null));
    }
    if (span.feedback) {
      body.push(
        keyValues([
          ["label", span.feedback.label],
          ["score", span.feedback.score],
          ["explanation", span.feedback.explanation],
        ])
      );
    }
    const attrCount = Object.keys(span.attributes).length;
    body.push(
      lazyDetails(
        ".attrs",
        `All attributes (${attrCount})` + (span.events.length ? ` and events (${span.events.length})` : ""),
        () =>
          el(
            "div",
            keyValues([
              ["span", span.name],
              ["scope", span.scope],
              ["service", span.service],
              ["step id", span.step_id],
              ["tool call id", span.tool && span.tool.call_id],
              ["provider", span.provider],
              ["withheld", span.withheld],
              ["truncated", Object.keys(span.truncated || {}).length ? span.truncated : null],
            ]),
            keyValues(Object.entries(span.attributes).sort(([a], [b]) => a.localeCompare(b)), "raw"),
            span.events.length ? keyValues(span.events.map((e) => [`${e.name} +${duration(e.time_us / 1000)}`, e.attributes]), "raw") : null
          )
      )
    );
    return el(
      "section.card.k-" + span.kind + (span.status === "error" ? ".failed" : ""),
      { id: "span-" + span.id, style: { marginLeft: `${Math.min(depth, 6) * 12}px` } },
      head,
      el("div.card-body", body)
    );
  }

  function runHeader(run, root) {
    const u = run.usage;
    const stats = [
      ["Status", el("span", statusDot(run.status), " ", run.status)],
      ["Duration", duration(run.duration_ms)],
      ["Steps", stepsText(run)],
      ["LLM calls", tokens(run.llm_calls) + (run.unpriced ? ` (${tokens(run.unpriced)} unpriced)` : "")],
      ["Tool calls", tokens(run.tools)],
      ["Tokens in", tokens(u.input)],
      ["Cached", tokens(u.cache_read)],
      ["Cache write", tokens(u.cache_write)],
      ["Out", tokens(u.output)],
      ["Cost", cost(run.cost) || "—"],
    ];
    const metadata = Object.entries(root.metadata || {});
    return el(
      "div.run-head",
      el(
        "div.run-title",
        el("h1", run.agent || run.name),
        el("span.run-id", run.run_id),
        el("span.sub", clock(run.start_ms)),
        run.parent_run ? el("span.sub", "nested in ", link("/runs/" + encodeURIComponent(run.parent_run), run.parent_run)) : null
      ),
      el("div.stats", stats.map(([k, v]) => el("div.stat", el("div.stat-k", k), el("div.stat-v", v)))),
      el(
        "div.chips",
        run.session ? el("span.chip", "session ", link("/sessions/" + encodeURIComponent(run.session), run.session)) : null,
        run.models.length ? el("span.chip", "models ", el("b", run.models.join(", "))) : null,
        metadata.map(([k, v]) => el("span.chip.meta-chip", k + " ", el("b", typeof v === "string" ? v : pretty(v)))),
        run.feedback ? el("span.chip.fb", "★ feedback ", el("b", run.feedback)) : null
      )
    );
  }

  async function runPage(runId) {
    document.title = `Run ${runId} · contextcompany dev`;
    setCrumbs(link("/", "Runs"), el("span", runId));
    let data;
    try {
      data = await getJSON("/api/runs/" + encodeURIComponent(runId));
      shownVersion = data.version;
      performance.mark("tcc:run-fetched"); // read by bench/bench_viewer.py
    } catch (e) {
      clear(main);
      main.appendChild(el("div.empty", `Run ${runId}: ${e.message}`));
      return;
    }
    let signature = null;
    function render(data) {
      const run = data.run;
      const ordered = orderTree(data.spans);
      const root = data.spans[0];
      const total = Math.max(root.duration_us, ...data.spans.map((s) => s.start_us + s.duration_us));
      signature = JSON.stringify([data.spans.length, run.feedback, run.cost]);
      document.title = `${run.agent || run.name} ${run.run_id} · contextcompany dev`;
      const scroll = window.scrollY;
      clear(main);
      append(main, [
        runHeader(run, root),
        el(
          "div.exchange",
          section("Prompt", renderMessages(root.system), renderMessages(root.input)),
          section("Response", renderMessages(root.output))
        ),
        errorBox(root.error),
        el(
          "div.panel",
          el("div.panel-title", "Timeline", el("span.sub", ` ${plural(data.spans.length, "span")}` + (data.outside ? `, ${data.outside} more in the same trace outside this run` : ""))),
          waterfall(ordered, total)
        ),
        el("div.cards", ordered.slice(1).map(({ span, depth }) => spanCard(span, depth - 1))),
        lazyDetails(".attrs.run-attrs", "Run span attributes", () =>
          keyValues(Object.entries(root.attributes).sort(([a], [b]) => a.localeCompare(b)), "raw")
        ),
      ]);
      window.scrollTo(0, scroll);
    }
    render(data);
    performance.mark("tcc:run-drawn");
    poll(async () => {
      const fresh = await getJSON("/api/runs/" + encodeURIComponent(runId));
      shownVersion = fresh.version;
      if (JSON.stringify([fresh.spans.length, fresh.run.feedback, fresh.run.cost]) !== signature) render(fresh);
    });
  }

  // --- the session page ---------------------------------------------------------------------------

  async function sessionPage(sessionId) {
    document.title = `Session ${sessionId} · contextcompany dev`;
    setCrumbs(link("/", "Runs"), el("span", "session " + sessionId));
    async function load() {
      let data;
      try {
        data = await getJSON("/api/sessions/" + encodeURIComponent(sessionId));
        shownVersion = data.version;
      } catch (e) {
        clear(main);
        main.appendChild(el("div.empty", `Session ${sessionId}: ${e.message}`));
        return;
      }
      const t = data.totals;
      const stats = [
        ["Runs", tokens(t.runs) + (t.errors ? ` (${t.errors} failed)` : "")],
        ["Span of time", duration((t.end_ns - t.start_ns) / 1e6)],
        ["Steps", tokens(t.steps)],
        ["LLM calls", tokens(t.llm_calls)],
        ["Tool calls", tokens(t.tools)],
        ["Tokens in", tokens(t.input)],
        ["Cached", tokens(t.cache_read)],
        ["Cache write", tokens(t.cache_write)],
        ["Out", tokens(t.output)],
        ["Cost", cost(t.cost) || "—"],
      ];
      clear(main);
      append(main, [
        el(
          "div.run-head",
          el("div.run-title", el("h1", "Session"), el("span.run-id", sessionId)),
          el("div.stats", stats.map(([k, v]) => el("div.stat", el("div.stat-k", k), el("div.stat-v", v))))
        ),
        el("div.list", runsTable(data.runs, null)),
      ]);
    }
    await load();
    poll(load);
  }

  // --- routing ------------------------------------------------------------------------------------

  const path = location.pathname;
  let match;
  if ((match = path.match(/^\/runs\/([^/]+)\/?$/))) runPage(decodeURIComponent(match[1]));
  else if ((match = path.match(/^\/sessions\/([^/]+)\/?$/))) sessionPage(decodeURIComponent(match[1]));
  else runsPage();
})();
