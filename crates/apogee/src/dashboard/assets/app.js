// The Apogee dashboard: one view per page, drawn from the JSON API under /api/.
// Routes are hashes (#/topics?topic=T) so every view can be linked and reloaded.
// Text from the cluster (names, bodies, properties) only ever goes in as text nodes.
"use strict";

const view = document.getElementById("view");

// ---- DOM helpers -------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function link(text, hash) {
  return el("a", { href: hash }, text);
}

function route(page, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  const text = query.toString();
  return "#/" + page + (text ? "?" + text : "");
}

// A table with a header row; `cells` maps a row object to its cells. `numeric` lists the
// columns aligned right.
function table(id, headers, rows, cells, numeric) {
  const right = new Set(numeric || []);
  const head = el("tr", {}, headers.map((h, i) => el("th", { class: right.has(i) ? "num" : null }, h)));
  const body = rows.map((row) =>
    el("tr", {}, cells(row).map((cell, i) => el("td", { class: right.has(i) ? "num" : null }, cell))));
  if (rows.length === 0) {
    body.push(el("tr", {}, el("td", { colspan: headers.length, class: "empty" }, "Nothing to show.")));
  }
  return el("table", { id }, el("thead", {}, head), el("tbody", {}, body));
}

function section(title, ...children) {
  return el("section", { class: "card" }, el("h2", {}, title), children);
}

function errorBox(message) {
  return el("div", { class: "error", role: "alert" }, el("strong", {}, "Failed: "), message);
}

function note(message) {
  return el("div", { class: "note" }, message);
}

function time(ms) {
  if (!ms || ms <= 0) return "-";
  const d = new Date(ms);
  const pad = (n, w) => String(n).padStart(w || 2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

// A figure the broker may not report: "-" when absent.
function maybe(value, shown) {
  if (value === undefined || value === null) return "-";
  return shown ? shown(value) : value;
}

function bytes(count) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(count);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return (unit === 0 ? String(value) : value.toFixed(1)) + " " + units[unit];
}

function fixed(number, digits) {
  return Number(number || 0).toFixed(digits);
}

// <input type="datetime-local"> value of an epoch-ms instant, in local time.
function localInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}

function fromLocalInput(text) {
  const ms = new Date(text).getTime();
  return Number.isFinite(ms) ? ms : undefined;
}

// ---- API ---------------------------------------------------------------------------------

// Calls the API; resolves to its data or rejects with the message naming what failed.
async function api(path, body) {
  let response;
  try {
    response = await fetch(path, body === undefined ? {} : {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch (error) {
    throw new Error(`the dashboard at ${location.host} did not answer ${path} (${error.message})`);
  }
  let answer;
  try {
    answer = await response.json();
  } catch (error) {
    throw new Error(`${path} answered HTTP ${response.status} without JSON`);
  }
  if (answer.status !== 0) throw new Error(answer.errMsg || `${path} failed`);
  return answer.data;
}

// Replaces the view with `title`, a loading line, then what `load` draws (or its failure).
async function page(title, load) {
  const body = el("div", { class: "body" }, el("p", { class: "loading" }, "Loading…"));
  view.replaceChildren(el("h1", {}, title), body);
  const token = Symbol(title);
  page.current = token;
  let content;
  try {
    content = await load();
  } catch (error) {
    content = errorBox(error.message);
  }
  const nodes = [content].flat(Infinity).filter((node) => node !== null && node !== undefined && node !== false);
  if (page.current === token) body.replaceChildren(...nodes);
}

// ---- pages -------------------------------------------------------------------------------

async function clusterPage() {
  await page("Cluster", async () => {
    const data = await api("/api/cluster");
    const problems = data.brokers.filter((b) => b.error).map((b) => errorBox(b.error));
    const brokers = table("brokers",
      ["Cluster", "Broker", "BID", "Address", "Version", "In TPS", "Out TPS", "Put today", "Get today",
        "Commit log", "Hours kept", "Disk used", "Active"],
      data.brokers,
      (b) => [b.cluster, b.brokerName, b.brokerId, b.addr, b.version || "-", maybe(b.inTps, (v) => fixed(v, 2)),
        maybe(b.outTps, (v) => fixed(v, 2)), maybe(b.putToday), maybe(b.getToday), maybe(b.commitLogMaxOffset, bytes),
        fixed(b.hoursKept, 2), (b.diskRatio * 100).toFixed(2) + " %", b.active || "-"],
      [2, 5, 6, 7, 8, 9, 10, 11]);
    const details = data.brokers.map((b) => el("details", { class: "runtime" },
      el("summary", {}, `Runtime info of ${b.brokerName} (${b.addr})`),
      table(null, ["Key", "Value"], Object.entries(b.runtime), ([k, v]) => [k, v])));
    return [
      note(`NameServer ${data.namesrv} · ${data.brokers.length} broker(s)`),
      problems,
      section("Brokers", brokers),
      section("Runtime info (GET_BROKER_RUNTIME_INFO)", details),
    ];
  });
}

async function topicsPage(params) {
  const name = params.get("topic");
  if (name) return topicPage(name);
  await page("Topics", async () => {
    const data = await api("/api/topics");
    const filter = el("input", { id: "topic-filter", type: "search", placeholder: "Filter topics" });
    const showAll = el("input", { id: "topic-show-all", type: "checkbox" });
    const holder = el("div");
    const count = el("span", { class: "note" });
    const draw = () => {
      const text = filter.value.trim().toLowerCase();
      const rows = data.topics.filter((t) =>
        (showAll.checked || t.kind === "NORMAL") && t.name.toLowerCase().includes(text));
      const hidden = showAll.checked ? 0 : data.topics.filter((t) => t.kind !== "NORMAL").length;
      count.textContent = `${rows.length} shown` + (hidden > 0 ? ` · ${hidden} retry, dead-letter and system topics hidden` : "");
      holder.replaceChildren(table("topics", ["Topic", "Kind"], rows,
        (t) => [link(t.name, route("topics", { topic: t.name })), el("span", { class: "kind " + t.kind }, t.kind)]));
    };
    filter.addEventListener("input", draw);
    showAll.addEventListener("change", draw);
    draw();
    return [
      el("div", { class: "toolbar" }, filter,
        el("label", {}, showAll, " Retry, dead-letter and system topics"), count),
      data.truncated ? note("Only the first topics are listed.") : null,
      section("All topics", holder),
    ];
  });
}

async function topicPage(name) {
  await page(`Topic ${name}`, async () => {
    const data = await api("/api/topic?" + new URLSearchParams({ topic: name }));
    const total = data.queues.reduce((sum, q) => sum + (q.maxOffset - q.minOffset), 0);
    const groups = data.consumerGroups.length === 0
      ? [note("No consumer group consumes this topic.")]
      : [el("ul", { class: "inline", id: "topic-groups" },
        data.consumerGroups.map((g) => el("li", {}, link(g, route("groups", { group: g })))))];
    return [
      el("p", {}, link("← All topics", "#/topics"), " · ",
        link("Browse messages", route("messages", { mode: "time", topic: name }))),
      note(`Put TPS ${fixed(data.putTps, 2)} · ${total} message(s) stored in ${data.queues.length} queue(s)`),
      section("Queues and offsets", table("queues",
        ["Broker", "Queue", "Min offset", "Max offset", "Messages", "Last stored"], data.queues,
        (q) => [q.brokerName, q.queueId, q.minOffset, q.maxOffset, q.maxOffset - q.minOffset,
          time(q.lastUpdateTimestamp)],
        [1, 2, 3, 4])),
      section("Route", table("route", ["Broker", "Addresses", "Read queues", "Write queues", "Perm"],
        data.route, (r) => [r.brokerName, r.addrs.join(", "), r.readQueues, r.writeQueues, perm(r.perm)],
        [2, 3])),
      section("Consumer groups", data.consumerGroupsError ? errorBox(data.consumerGroupsError) : groups),
    ];
  });
}

function perm(bits) {
  return (bits & 4 ? "R" : "-") + (bits & 2 ? "W" : "-") + (bits & 1 ? "X" : "-") + ` (${bits})`;
}

async function groupsPage(params) {
  const group = params.get("group");
  if (group) return groupPage(group);
  await page("Consumer groups", async () => {
    const data = await api("/api/groups");
    const problems = data.groups.filter((g) => g.error).map((g) => errorBox(g.error));
    return [
      problems,
      data.more > 0 ? note(`${data.more} more group(s) not summarized.`) : null,
      section("Groups", table("groups",
        ["Group", "Clients", "Version", "Type", "Model", "TPS", "Lag"], data.groups,
        (g) => [link(g.group, route("groups", { group: g.group })), g.count, g.version,
          g.consumeType || "-", g.messageModel || "-", fixed(g.consumeTps, 0), g.diffTotal],
        [1, 5, 6])),
    ];
  });
}

async function groupPage(group) {
  await page(`Consumer group ${group}`, async () => {
    const data = await api("/api/group?" + new URLSearchParams({ group }));
    return [
      el("p", {}, link("← All groups", "#/groups")),
      note(`Consume TPS ${fixed(data.consumeTps, 2)} · total lag ${data.diffTotal}`),
      section("Lag per queue", table("lag",
        ["Topic", "Broker", "Queue", "Broker offset", "Consumer offset", "Lag", "Inflight", "Last consumed"],
        data.queues,
        (q) => [q.topic, q.brokerName, q.queueId, q.brokerOffset, q.consumerOffset,
          el("span", { class: q.lag > 0 ? "lag" : null }, q.lag), q.inflight, time(q.lastTimestamp)],
        [2, 3, 4, 5, 6])),
      section("Clients",
        data.clientsNote ? note(data.clientsNote) : null,
        clientsTable("clients", data.clients)),
      section("Subscriptions", table("subscriptions", ["Topic", "Expression"], data.subscriptions,
        (s) => [s.topic, s.expression])),
    ];
  });
}

function clientsTable(id, clients) {
  return table(id, ["Client id", "Address", "Language", "Version"], clients,
    (c) => [c.clientId, c.clientAddr, c.language || "-", c.version]);
}

// Suggestions for topic fields: the cluster's topics, fetched once. A failure leaves the
// fields without suggestions; the page's own call shows what is wrong.
const topicSuggestions = el("datalist", { id: "topic-names" });
document.body.append(topicSuggestions);
let topicsSuggested = false;

function suggestTopics() {
  if (topicsSuggested) return;
  topicsSuggested = true;
  api("/api/topics").then((data) => {
    topicSuggestions.replaceChildren(...data.topics.filter((t) => t.kind !== "SYSTEM")
      .map((t) => el("option", { value: t.name })));
  }, () => { topicsSuggested = false; });
}

function form(id, fields, button, onSubmit) {
  const inputs = {};
  if (fields.some((f) => f.name === "topic")) suggestTopics();
  const rows = fields.map((f) => {
    const input = el("input", {
      id: `${id}-${f.name}`, name: f.name, type: f.type || "text", value: f.value ?? "",
      placeholder: f.placeholder, required: f.required, list: f.name === "topic" ? "topic-names" : null,
      autocomplete: "off",
    });
    inputs[f.name] = input;
    return el("label", {}, el("span", {}, f.label), input);
  });
  const node = el("form", { id, class: "query" }, rows, el("button", { type: "submit" }, button));
  node.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = {};
    for (const [name, input] of Object.entries(inputs)) values[name] = input.value.trim();
    onSubmit(values);
  });
  return node;
}

async function producersPage(params) {
  const group = params.get("group") || "";
  const topic = params.get("topic") || "";
  const query = form("producer-form", [
    { name: "group", label: "Producer group", value: group, required: true },
    { name: "topic", label: "Topic", value: topic, required: true },
  ], "Show producers", (v) => { location.hash = route("producers", v); });
  if (!group || !topic) {
    view.replaceChildren(el("h1", {}, "Producers"),
      note("Producers are found by their group and a topic they send to (producerConnection)."), query);
    return;
  }
  await page("Producers", async () => {
    const data = await api("/api/producers?" + new URLSearchParams({ group, topic }));
    return [query, section(`Producers of ${data.group} on ${data.topic}`, clientsTable("producers", data.clients))];
  });
}

function messageRows(id, messages, topic, extra) {
  return table(id, ["Message id", "Tags", "Keys", "Queue", "Offset", "Stored", "Body"].concat(extra ? extra.headers : []),
    messages,
    (m) => [link(m.msgId, route("messages", { mode: "id", topic: topic || m.topic, id: m.offsetMsgId })),
      m.tags || "-", m.keys || "-", m.queueId, m.queueOffset, time(m.storeTimestamp),
      el("span", { class: "body-preview" }, m.body + (m.bodyTruncated ? "…" : ""))]
      .concat(extra ? extra.cells(m) : []),
    [3, 4]);
}

async function messagesPage(params) {
  const mode = params.get("mode") || "key";
  const topic = params.get("topic") || "";
  const now = Date.now();
  const tabs = el("div", { class: "tabs" }, [["key", "By key"], ["id", "By id"], ["time", "By time"]].map(([m, label]) =>
    el("a", { href: route("messages", { mode: m, topic }), class: m === mode ? "active" : null, id: `tab-${m}` }, label)));
  const submit = (v) => {
    const out = { mode, topic: v.topic };
    if (mode === "key") out.key = v.key;
    if (mode === "id") out.id = v.id;
    if (mode === "time") { out.begin = fromLocalInput(v.begin); out.end = fromLocalInput(v.end); }
    location.hash = route("messages", out);
  };
  const fields = [{ name: "topic", label: "Topic", value: topic, required: true }];
  if (mode === "key") fields.push({ name: "key", label: "Key", value: params.get("key") || "", required: true });
  if (mode === "id") fields.push({ name: "id", label: "Message id", value: params.get("id") || "", required: true });
  const begin = Number(params.get("begin")) || now - 3600000;
  const end = Number(params.get("end")) || now + 60000;
  if (mode === "time") {
    fields.push({ name: "begin", label: "From", type: "datetime-local", value: localInput(begin) });
    fields.push({ name: "end", label: "To", type: "datetime-local", value: localInput(end) });
  }
  const query = form("message-form", fields, "Search", submit);
  const ready = topic && (mode === "time" || params.get(mode));
  if (!ready) {
    view.replaceChildren(el("h1", {}, "Messages"), tabs, query);
    return;
  }
  await page("Messages", async () => {
    if (mode === "id") return [tabs, query, await messageDetail(topic, params.get("id"))];
    const data = mode === "key"
      ? await api("/api/messages/by-key?" + new URLSearchParams({ topic, key: params.get("key") }))
      : await api("/api/messages/by-time?" + new URLSearchParams({ topic, begin, end }));
    return [tabs, query,
      data.truncated ? note("Only the first messages are shown; narrow the search.") : null,
      section(`${data.messages.length} message(s)`, messageRows("messages", data.messages, topic))];
  });
}

async function messageDetail(topic, id) {
  const data = await api("/api/messages/by-id?" + new URLSearchParams({ topic, id }));
  const m = data.message;
  const fields = [
    ["Message id", m.msgId], ["Offset id", m.offsetMsgId], ["Topic", m.topic], ["Tags", m.tags || "-"],
    ["Keys", m.keys || "-"], ["Queue", m.queueId], ["Queue offset", m.queueOffset],
    ["Commit-log offset", m.commitLogOffset], ["Reconsume times", m.reconsumeTimes],
    ["Born", `${time(m.bornTimestamp)} from ${m.bornHost}`],
    ["Stored", `${time(m.storeTimestamp)} on ${m.storeHost}`],
  ];
  const tracks = data.trackError ? errorBox(data.trackError)
    : data.tracks.length === 0 ? note("No consumer group consumes this topic.")
      : table("tracks", ["Consumer group", "Track"], data.tracks,
        (t) => [link(t.consumerGroup, route("groups", { group: t.consumerGroup })),
          el("span", { class: "track " + t.trackType }, t.trackType)]);
  return [
    el("div", { class: "columns" },
      section("Message", el("dl", { id: "message-fields" }, fields.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]))),
      el("div", {},
        section(`Body (${m.bodyBytes} bytes)`, el("pre", { id: "message-body" }, m.body),
          m.bodyTruncated ? note("The body is cut here.") : null),
        section("Consumed by", tracks))),
    section("Properties", table("properties", ["Key", "Value"], Object.entries(m.properties), ([k, v]) => [k, v])),
  ];
}

async function dlqPage(params) {
  const group = params.get("group");
  if (!group) {
    await page("Dead letters", async () => {
      const data = await api("/api/dlq/groups");
      return [
        note("A group's messages that failed too often are kept in its dead-letter topic %DLQ%<group>."),
        section("Groups with dead letters", table("dlq-groups", ["Group", "Topic"], data.groups,
          (g) => [link(g, route("dlq", { group: g })), "%DLQ%" + g])),
      ];
    });
    return;
  }
  await page(`Dead letters of ${group}`, async () => {
    const data = await api("/api/dlq?" + new URLSearchParams({ group }));
    const status = el("div", { id: "resend-status" });
    const resend = (m, button) => async () => {
      button.disabled = true;
      status.replaceChildren(note(`Resending ${m.msgId}…`));
      try {
        const sent = await api("/api/dlq/resend", { group, offsetMsgId: m.offsetMsgId });
        status.replaceChildren(el("div", { class: "ok", role: "status" },
          `Resent ${m.msgId} to ${sent.topic} as ${sent.msgId} (${sent.brokerName} queue ${sent.queueId}, offset ${sent.queueOffset}).`));
      } catch (error) {
        status.replaceChildren(errorBox(error.message));
      } finally {
        button.disabled = false;
      }
    };
    const rows = messageRows("dlq-messages", data.messages, "%DLQ%" + group, {
      headers: ["Original topic", ""],
      cells: (m) => {
        const button = el("button", { class: "resend", type: "button" }, "Resend");
        button.addEventListener("click", resend(m, button));
        return [m.properties.RETRY_TOPIC || "-", button];
      },
    });
    return [
      el("p", {}, link("← All dead-letter topics", "#/dlq")),
      note("Dead messages of the last 31 days (at most 64). Resend sends a copy to the message's " +
        "original topic (producer group ReSendMsgById); the dead message stays here."),
      status,
      data.truncated ? note("Only the first messages are shown.") : null,
      section(`${data.messages.length} dead message(s)`, rows),
    ];
  });
}

// ---- routing -----------------------------------------------------------------------------

const pages = {
  cluster: clusterPage, topics: topicsPage, groups: groupsPage, producers: producersPage,
  messages: messagesPage, dlq: dlqPage,
};

function render() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [name, query] = hash.split("?");
  const pageName = pages[name] ? name : "cluster";
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.page === pageName);
  }
  pages[pageName](new URLSearchParams(query || "")).catch((error) => {
    view.replaceChildren(errorBox(error.message));
  });
}

window.addEventListener("hashchange", render);
render();
