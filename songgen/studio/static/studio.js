// songgen studio: the page's script. No libraries: fetch, a little DOM, SVG drawn by hand.
"use strict";
const $ = (id) => document.getElementById(id);
const COLOURS = ["#1f6fb4", "#d9731a", "#2a9d5b", "#c4314b", "#7b5ab0", "#8a6a3a", "#d058a8", "#5f6b73"];
const LN2 = Math.log(2);
let lastSeed = null, models = [], songs = [], writing = null, runsShown = new Set(), runColours = {};
// The studio's own limits for one writing (the server sends them with the models).
let limits = { songs: 16, length: 20000, retries: 10, seconds: 120 };
// Opened with #token=... (beyond this computer): the token is kept in this tab's
// sessionStorage, which is this port's alone (a cookie would go to every port of the host),
// sent with every request, and taken out of the address bar.
function takeToken() {
  const given = new URLSearchParams(location.hash.slice(1)).get("token") || new URLSearchParams(location.search).get("token");
  if (given) { sessionStorage.setItem("songgen-token", given); history.replaceState(null, "", location.pathname); }
  return sessionStorage.getItem("songgen-token");
}
let TOKEN = takeToken();
// The address with the token opened in a tab already showing the page: only "#..." changed.
window.addEventListener("hashchange", () => {
  TOKEN = takeToken();
  loadModels().then(() => status("ready")).catch((e) => status(`could not list the models: ${e.message}`));
});
// fetch with the token; an answer that is an error (JSON {"error": ...}) is thrown with its words.
async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (TOKEN) headers.Authorization = `token ${TOKEN}`;
  const res = await fetch(path, { ...options, headers });
  if (!res.ok) {
    const err = await res.json().catch(() => ({ error: `${res.status} ${res.statusText}` }));
    const e = new Error(err.error); e.info = err; throw e;
  }
  return res;
}

function esc(s) { return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }
function status(text) { $("status").textContent = text; }
function showError(box, text) { $(box).textContent = text || ""; $(box).hidden = !text; }
function currentModel() { return models.find((m) => m.name === $("model").value); }

// ---- Tabs
document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => {
  document.querySelectorAll(".tab, .panel").forEach((e) => e.classList.remove("active"));
  b.classList.add("active");
  $(b.dataset.tab).classList.add("active");
  if (b.dataset.tab === "training") refreshRuns();
}));

// ---- Models
async function loadModels() {
  const res = await api("/api/models");
  const data = await res.json();
  models = data.models.filter((m) => !m.error);
  if (data.limits) limits = data.limits;
  $("num_songs").max = $("num_ideas").max = limits.songs;
  $("length").max = limits.length;
  const keep = $("model").value;
  $("model").innerHTML = models.length ? "" : `<option value="">no checkpoint in ${esc(data.root)}</option>`;
  for (const m of models) {
    // Each file with its own score: the evaluation at its step, not the run's best.
    const o = new Option(`${m.name} (step ${m.step.toLocaleString()}, ${score(m)})`, m.name);
    $("model").add(o);
  }
  // As `songgen sample --checkpoint RUN` chooses: the newest run's best.pt, else its last.pt.
  const chosen = models.some((m) => m.name === keep) ? keep : data.default;
  if (models.some((m) => m.name === chosen)) $("model").value = chosen;
  modelChanged();
}
function score(m) { return m.val_bpc == null ? "not evaluated at this step" : `${m.val_bpc.toFixed(3)} bits/char`; }
function modelChanged() {
  const m = currentModel();
  $("model-info").textContent = !m ? "" : `${m.model.layers}×${m.model.hidden_size} LSTM · ` +
    `${score(m)} · saved ${m.date}`;
  $("corpus-info").textContent = !m ? "" : m.corpus_available ? `corpus: ${m.corpus}` : "the model's corpus is not on this computer: no check";
  $("originality").disabled = $("max_copy").disabled = !(m && m.corpus_available);
  // The style picker: the model's styles, kept when the next model has the one chosen.
  const styles = (m && m.styles) || [], keepStyle = $("style").value;
  $("style").innerHTML = '<option value="">no style (the mix)</option>';
  for (const name of styles) $("style").add(new Option(name, name));
  $("style").value = styles.includes(keepStyle) ? keepStyle : "";
  $("style-row").hidden = !styles.length;
  checkDraft();
}
$("model").addEventListener("change", modelChanged);

function numberOrNull(id) { const v = $(id).value.trim(); return v === "" ? null : Number(v); }
function params(extra) {
  const m = currentModel();
  return Object.assign({
    model: m ? m.name : "", temperature: Number($("temperature").value), top_k: Number($("top_k").value),
    top_p: Number($("top_p").value), num_songs: Number($("num_songs").value), length: Number($("length").value),
    max_lines: numberOrNull("max_lines"), seed: numberOrNull("seed"),
    rhyme: $("rhyme").value, chorus: $("chorus").value, scan: $("scan").value,
    originality: !!(m && m.corpus_available && $("originality").checked),
    max_copy: m && m.corpus_available && $("originality").checked ? numberOrNull("max_copy") : null,
    style: m && m.styles && m.styles.length ? ($("blend").value.trim() || $("style").value) : "",
  }, extra);
}

// ---- Streaming: POST /api/write answers with Server-Sent Events, read off the response body.
async function stream(body, on, signal) {
  const res = await api("/api/write", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal });
  const reader = res.body.getReader(), dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i); buf = buf.slice(i + 2);
      let kind = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (on[kind]) on[kind](JSON.parse(data));
    }
  }
}
function startWriting(stopButton) {
  writing = new AbortController();
  $("write-btn").disabled = $("continue-btn").disabled = $("ideas-btn").disabled = true;
  $(stopButton).disabled = false;
  return writing.signal;
}
function stopWriting() {
  if (writing) writing.abort();
  writing = null;
  $("write-btn").disabled = false;
  $("stop-btn").disabled = $("costop-btn").disabled = true;
  checkDraft();
}
$("stop-btn").addEventListener("click", () => { stopWriting(); status("stopped"); });
$("costop-btn").addEventListener("click", () => { stopWriting(); status("stopped"); });

// ---- Write: songs side by side
let dirty = new Set(), frame = 0;
function render() {
  frame = 0;
  for (const s of dirty) s.traced ? spans(s, s.text.length) : (s.pre.textContent = s.text);
  dirty.clear();
}
// A traced song's text as one span per character (each opens its choices), from where the
// card has them to `upto`; `copy`: [start, end) of a passage copied from the corpus.
function spans(s, upto, copy) {
  if (s.shown > s.text.length || copy) { s.pre.textContent = ""; s.shown = 0; }
  const part = document.createDocumentFragment();
  for (let i = s.shown; i < upto; i++) {
    const span = document.createElement("span");
    span.dataset.i = i;
    span.textContent = s.text[i];
    if (copy && i >= copy[0] && i < copy[1]) { span.className = "copied"; span.title = "copied from the corpus"; }
    part.append(span);
  }
  s.pre.append(part);
  s.shown = upto;
}
// The choices at character i of song s: the opening, its trace, or none kept (past the cap).
function openChoices(s, i) {
  const box = $("write-choices");
  box.hidden = false;
  $("songs").querySelectorAll("span.sel").forEach((e) => e.classList.remove("sel"));
  const span = s.pre.querySelector(`span[data-i="${i}"]`);
  if (span) span.classList.add("sel");
  const t = i < s.primeLength ? "prime" : s.traces[i - s.primeLength];
  songgenInside.showTrace(box, t === undefined ? null : t, s.text[i]);
}
$("songs").addEventListener("click", (e) => {
  const card = e.target.closest(".song"), i = e.target.dataset ? e.target.dataset.i : undefined;
  if (!card || i === undefined || !e.target.closest("pre")) return;
  const s = songs.find((x) => x.card === card);
  if (s && s.traced) openChoices(s, +i);
});
function songCard(i) {
  const card = document.createElement("div");
  card.className = "song live";
  card.innerHTML = `<h3><span class="n">${i + 1}</span><span class="t"></span>
    <button class="keep" title="Take this song to Co-write">Co-write</button><button class="inside-btn" title="See the model's choices at each character of this song">Inside</button><button class="copy">Copy</button></h3>
    <div class="meta">writing…</div><pre></pre>`;
  const s = { text: "", card, pre: card.querySelector("pre"), meta: card.querySelector(".meta"), song: null,
              traced: false, traces: [], primeLength: 0, shown: 0 };
  card.querySelector(".copy").addEventListener("click", () => copyText(s.text).then(() => status(`song ${i + 1} copied`)));
  card.querySelector(".keep").addEventListener("click", () => { $("draft").value = s.text + "\n"; checkDraft(); document.querySelector('[data-tab="cowrite"]').click(); });
  card.querySelector(".inside-btn").addEventListener("click", () => { $("inside-text").value = s.text; document.querySelector('[data-tab="inside"]').click(); });
  return s;
}
async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const t = document.createElement("textarea");  // a page opened over the network: no clipboard API
  t.value = text; document.body.append(t); t.select(); document.execCommand("copy"); t.remove();
}
function showSong(s, song) {
  s.song = song; s.text = song.text; s.card.classList.remove("live");
  s.card.querySelector(".t").textContent = song.title || "";
  const c = song.copy;
  if (s.traced) {  // the traces follow the opening (a song written again came without it)
    s.primeLength = song.text.length >= s.prime.length ? s.prime.length : 0;
    spans(s, song.text.length, c && c.length && c.start >= 0 ? [c.start, c.start + c.length] : [0, 0]);
  } else if (c && c.length && c.start >= 0) {
    const a = song.text.slice(0, c.start), b = song.text.slice(c.start, c.start + c.length), z = song.text.slice(c.start + c.length);
    s.pre.innerHTML = `${esc(a)}<mark title="copied from the corpus">${esc(b)}</mark>${esc(z)}`;
  } else s.pre.textContent = song.text;
  const why = { end: "ended by the model", shape: "ended by the song shape", "max-lines": "line limit", length: "length limit" }[song.stop];
  s.meta.textContent = `${song.chars} chars · ${song.bits_per_char.toFixed(2)} bits/char · ${why}` +
    (c ? ` · longest copy ${c.length} chars` : "");
}
$("write-btn").addEventListener("click", async () => {
  showError("error", "");
  const body = params({ title: $("title").value, prime: $("prime").value, trace: $("trace").checked });
  $("songs").innerHTML = ""; songs = [];
  $("write-choices").hidden = true;
  $("dl-txt").disabled = $("dl-jsonl").disabled = true;
  const signal = startWriting("stop-btn"), t0 = performance.now();
  let chars = 0;
  status("starting…");
  try {
    await stream(body, {
      start(d) {
        $("seed").title = `the last seed was ${d.seed}: type it here to write the same songs again`; lastSeed = d.seed;
        for (let i = 0; i < d.num_songs; i++) {
          const s = songCard(i); s.text = s.prime = d.prime; s.pre.textContent = d.prime; songs.push(s); $("songs").append(s.card);
          if (body.trace) { s.traced = true; s.primeLength = d.prime.length; s.pre.textContent = ""; spans(s, s.text.length); }
        }
      },
      trace(ts) { ts.forEach((list, i) => { if (list) songs[i].traces.push(...list); }); },
      chars(cs) {
        cs.forEach((c, i) => { if (c !== null) { songs[i].text += c; dirty.add(songs[i]); chars++; } });
        if (!frame) frame = requestAnimationFrame(render);
        status(`writing… ${chars.toLocaleString()} characters`);
      },
      song(d) { render(); showSong(songs[d.number - 1], d); },
      retry(d) { const s = songs[d.number - 1]; s.meta.textContent = `copied ${d.copy} characters: writing it again…`; s.text = s.text.slice(0, 0); s.traces = []; s.primeLength = 0; },
      dropped(d) { const s = songs[d.number - 1]; s.card.classList.remove("live"); s.meta.textContent = `left out: still copied ${d.copy} characters`; },
      done(d) { status(`${songs.length} song${songs.length > 1 ? "s" : ""}, ${d.chars.toLocaleString()} characters in ${((performance.now() - t0) / 1000).toFixed(1)} s · seed ${lastSeed}`); },
      error(d) { showError("error", d.error); },
    }, signal);
  } catch (e) {
    if (e.name !== "AbortError") showError("error", e.message);
  }
  render();
  songs.forEach((s) => { if (!s.song) s.card.classList.remove("live"); });
  $("dl-txt").disabled = $("dl-jsonl").disabled = !songs.some((s) => s.song);
  stopWriting();
});
function download(name, text, type) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type })); a.download = name; a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}
$("dl-txt").addEventListener("click", () => download("songs.txt", songs.filter((s) => s.song).map((s) => s.song.text).join("\n\n\n") + "\n", "text/plain"));
$("dl-jsonl").addEventListener("click", () => download("songs.jsonl", songs.filter((s) => s.song).map((s) =>
  JSON.stringify(Object.assign({ checkpoint: currentModel() && currentModel().name }, s.song)) + "\n").join(""), "application/jsonl"));

// ---- Co-write
function checkDraft() {
  const m = currentModel(), text = $("draft").value;
  const known = new Set(m ? Array.from(m.chars) : []), bad = new Map();
  if (m) for (const c of text) if (!known.has(c) && c !== "\r") bad.set(c, (bad.get(c) || 0) + 1);
  const shown = Array.from(bad, ([c, n]) => `${/[\s\p{C}\p{M}]/u.test(c) ? "U+" + c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0") : "“" + c + "”"}${n > 1 ? " ×" + n : ""}`);
  $("unknown").hidden = !bad.size;
  $("unknown").textContent = bad.size ? `Characters the model never saw (replace them to continue): ${shown.join(", ")}` : "";
  const busy = !!writing;
  $("continue-btn").disabled = $("ideas-btn").disabled = busy || bad.size > 0 || !m;
}
$("draft").addEventListener("input", checkDraft);
$("continue-btn").addEventListener("click", async () => {
  showError("co-error", "");
  const prime = $("draft").value;
  const signal = startWriting("costop-btn");
  status("continuing…");
  try {
    await stream(params({ prime, title: "", num_songs: 1, length: Math.min(limits.length, prime.length + Number($("length").value)) }), {
      start(d) { $("draft").value = d.prime; },
      chars(cs) { if (cs[0] !== null) { $("draft").value += cs[0]; $("draft").scrollTop = $("draft").scrollHeight; } },
      song(d) { $("draft").value = d.text + (d.stop === "max-lines" ? "\n" : ""); },
      done() { status("continued"); },
      error(d) { showError("co-error", d.error); },
    }, signal);
  } catch (e) {
    if (e.name !== "AbortError") { showError("co-error", e.message); if (e.info && e.info.unknown) checkDraft(); }
  }
  stopWriting();
});
$("ideas-btn").addEventListener("click", async () => {
  showError("co-error", "");
  const prime = $("draft").value, n = Number($("num_ideas").value);
  const signal = startWriting("costop-btn");
  $("ideas").innerHTML = "";
  const ideas = [];
  let start = prime.length;
  status(`${n} ideas for the next line…`);
  try {
    await stream(params({ prime, title: "", num_songs: n, more_lines: 1, max_lines: null, max_copy: null,
                          length: Math.min(limits.length, prime.length + 400) }), {
      start(d) {
        start = d.prime.length;
        for (let i = 0; i < d.num_songs; i++) {
          const b = document.createElement("button"); b.className = "idea"; b.disabled = true;
          const idea = { text: "", b }; ideas.push(idea); $("ideas").append(b);
          b.addEventListener("click", () => {
            const draft = $("draft").value;
            $("draft").value = draft + idea.text + (idea.ends ? "" : "\n"); checkDraft();
            $("ideas").innerHTML = ""; status("idea added");
          });
        }
      },
      chars(cs) { cs.forEach((c, i) => { if (c !== null) { ideas[i].text += c; ideas[i].b.textContent = ideas[i].text.replace(/^\n+/, "↵ "); } }); },
      song(d) {
        const idea = ideas[d.number - 1];
        idea.text = d.text.slice(start); idea.ends = d.stop === "end" || d.stop === "shape";
        idea.b.textContent = idea.text.replace(/^\n+/, "↵ ") + (idea.ends ? "  (the song ends)" : "");
        idea.b.disabled = false;
      },
      done() { status("click an idea to add it"); },
      error(d) { showError("co-error", d.error); },
    }, signal);
  } catch (e) {
    if (e.name !== "AbortError") showError("co-error", e.message);
  }
  stopWriting();
});

// ---- Training: runs, live curves (polled), drawn as SVG
async function refreshRuns() {
  const res = await api("/api/runs");
  const data = await res.json();
  const list = $("runs");
  if (!runsShown.size && data.runs.length) {
    (data.runs.filter((r) => r.running).length ? data.runs.filter((r) => r.running) : data.runs.slice(0, 1)).forEach((r) => runsShown.add(r.name));
  }
  data.runs.forEach((r, i) => { if (!(r.name in runColours)) runColours[r.name] = COLOURS[Object.keys(runColours).length % COLOURS.length]; });
  list.innerHTML = data.runs.length ? "" : `<div class="hint">no training runs in ${esc(data.root)}</div>`;
  for (const r of data.runs) {
    const row = document.createElement("label"); row.className = "run";
    row.innerHTML = `<input type="checkbox" ${runsShown.has(r.name) ? "checked" : ""}><span class="swatch" style="background:${runColours[r.name]}"></span>
      <span>${esc(r.name)}</span><span class="badge ${r.running ? "on" : ""}">${r.error ? "unreadable" : r.running ? "training" : "idle"}</span>`;
    if (r.error) { row.title = r.error; row.classList.add("broken"); }
    row.querySelector("input").addEventListener("change", (e) => { e.target.checked ? runsShown.add(r.name) : runsShown.delete(r.name); refreshCurves(data.runs); });
    list.append(row);
  }
  await refreshCurves(data.runs);
}
let curves = [];
async function refreshCurves(runs) {
  const shown = runs.filter((r) => runsShown.has(r.name));
  curves = await Promise.all(shown.map(async (r) => Object.assign({ name: r.name, records: [] },
    await api(`/api/metrics?run=${encodeURIComponent(r.name)}`).then((res) => res.json()).catch((e) => ({ error: e.message })), { info: r })));
  draw();
  const fmt = (v, d = 4) => (v == null ? "–" : typeof v === "number" ? (Number.isInteger(v) ? v.toLocaleString() : v.toFixed(d)) : esc(String(v)));
  $("run-details").innerHTML = curves.length ? `<table class="details"><tr><th>run</th><th>state</th><th>step</th><th>epoch</th><th>best loss</th><th>chars/s</th><th>model</th><th>corpus</th><th>training options</th></tr>` +
    curves.map((c) => `<tr><td><span class="swatch" style="display:inline-block;width:10px;height:10px;background:${runColours[c.name]}"></span> ${esc(c.name)}</td>
      <td>${c.error ? esc(c.error) : c.running ? `training (pid ${c.pid})` : "idle"}</td><td>${fmt(c.step)}</td><td>${fmt(c.epoch)}</td>
      <td>${c.best_val_loss == null ? "–" : `${c.best_val_loss.toFixed(4)} nats, ${c.best_val_bpc.toFixed(4)} bits/char`}</td><td>${fmt(c.chars_per_sec)}</td>
      <td>${c.info.model ? `${c.info.model.layers}×${c.info.model.hidden_size}, emb ${c.info.model.embed_dim}` : "–"}</td><td>${fmt(c.info.corpus)}</td>
      <td>${c.info.training ? esc(Object.entries(c.info.training).filter(([k]) => !["device", "checkpoint_dir"].includes(k)).map(([k, v]) => `${k} ${v}`).join(", ")) : "–"}</td></tr>`).join("") + "</table>" : "";
}
function ticks(lo, hi, n) {
  const raw = (hi - lo) / n || 1, p = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
  const out = [];
  for (let t = Math.floor(lo / step) * step; t < hi + step * 0.999; t += step) out.push(+t.toPrecision(10));
  return out;
}
function draw() {
  const svg = $("chart"), W = 720, H = 380, L = 58, R = 16, T = 16, B = 40;
  const xk = $("x-axis").value, scale = $("y-unit").value === "bits" ? 1 / LN2 : 1;
  const pts = (recs, k) => recs.filter((r) => r[xk] != null && r[k] != null).map((r) => [r[xk], r[k] * scale]);
  const all = curves.flatMap((c) => pts(c.records, "train_loss").concat(pts(c.records, "val_loss")));
  if (!all.length) { svg.innerHTML = `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no evaluations yet: they appear here as training logs them</text>`; return; }
  const ys = all.map((p) => p[1]), xt = ticks(0, Math.max(...all.map((p) => p[0])) || 1, 6);
  const yt = ticks(Math.min(...ys) * 0.98, Math.max(...ys) * 1.02, 6);
  const sx = (v) => L + (v - xt[0]) / (xt[xt.length - 1] - xt[0]) * (W - L - R);
  const sy = (v) => H - B - (v - yt[0]) / (yt[yt.length - 1] - yt[0]) * (H - T - B);
  const time = (s) => (s >= 3600 ? `${+(s / 3600).toFixed(2)}h` : s >= 60 ? `${+(s / 60).toFixed(1)}m` : `${s}s`);
  let out = yt.map((t) => `<line class="grid" x1="${L}" x2="${W - R}" y1="${sy(t)}" y2="${sy(t)}"/><text x="${L - 6}" y="${sy(t) + 4}" text-anchor="end">${t}</text>`).join("");
  out += xt.map((t) => `<text x="${sx(t)}" y="${H - B + 16}" text-anchor="middle">${xk === "elapsed" ? time(t) : t.toLocaleString()}</text>`).join("");
  out += `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#999"/>`;
  out += `<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">${xk === "elapsed" ? "elapsed training time" : "step"}</text>`;
  out += `<text transform="translate(14,${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${scale === 1 ? "nats/char" : "bits/char"}</text>`;
  for (const c of curves) {
    for (const [k, dash] of [["train_loss", ' stroke-dasharray="5 4" stroke-opacity="0.7"'], ["val_loss", ""]]) {
      const p = pts(c.records, k);
      if (!p.length) continue;
      out += `<polyline fill="none" stroke="${runColours[c.name]}" stroke-width="2"${dash} points="${p.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ")}"/>`;
      if (k === "val_loss") out += p.map(([x, y]) => `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${runColours[c.name]}"/>`).join("");
    }
  }
  svg.innerHTML = out;
  svg.dataset.points = curves.reduce((n, c) => n + c.records.length, 0);
}
$("x-axis").addEventListener("change", draw);
$("y-unit").addEventListener("change", draw);
setInterval(() => { if ($("training").classList.contains("active")) refreshRuns().catch(() => {}); }, 1500);
setInterval(() => { if (!writing) loadModels().catch(() => {}); }, 15000);

loadModels().then(() => status("ready")).catch((e) => status(`could not list the models: ${e.message}`));
