/**
 * The dashboard's one page: static HTML with its CSS and script inline, nothing fetched from
 * anywhere else (no CDN, no font, no image) — the Content-Security-Policy below says so to the
 * browser too: only this script and this style (by hash) run, and the only connection the page
 * may open is to its own origin (the event stream).
 *
 * The script is a renderer and nothing more: it opens `/events` (Server-Sent Events, server.ts),
 * and for each message — a whole PageView (view.ts), numbers already formatted — it rebuilds the
 * list of migrations with DOM calls (textContent, never innerHTML: names come from the agent) and
 * draws the bytes-per-round chart in SVG. Every figure carries `data-field` (its key) and
 * `data-value` (its number) so programs and tests read numbers, not text. EventSource reconnects
 * by itself after a dropped stream; a refused one (the dashboard full, HTTP 503) is retried every
 * 5 s by the script.
 */
import { createHash } from 'node:crypto';

const STYLE = `
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #5b6470; --bg: #fff; --card: #f5f7fa; --accent: #2563eb;
  --est: #93b4f5; --ok: #15803d; --bad: #b91c1c; --warn: #b45309; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8eb; --muted: #9aa4b1; --bg: #111418; --card: #1b2027;
  --accent: #60a5fa; --est: #35507a; --ok: #4ade80; --bad: #f87171; --warn: #fbbf24; } }
body { font: 15px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); margin: 0; padding: 1rem 1.5rem; }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: baseline; margin-bottom: 1rem; }
h1 { font-size: 1.25rem; margin: 0; }
#agent[data-state="connected"] { color: var(--ok); }
#agent[data-state="unreachable"] { color: var(--bad); font-weight: 600; }
#agent[data-state="connecting"] { color: var(--warn); }
#link { color: var(--muted); font-size: .85rem; }
#link[data-state="down"] { color: var(--bad); }
.migration { background: var(--card); border-radius: 8px; padding: .75rem 1rem; margin: 0 0 1rem; }
.migration h2 { font-size: 1.05rem; margin: 0 0 .25rem; }
.migration .id { color: var(--muted); font: .8rem ui-monospace, monospace; }
.migration[data-outcome="completed"] .report { color: var(--ok); }
.migration[data-outcome="failed"] .report, .migration[data-outcome="cancelled"] .report { color: var(--bad); }
.report { font-weight: 600; margin: .5rem 0; }
.note { color: var(--warn); }
progress { width: 100%; height: 1.1rem; margin: .5rem 0 .1rem; accent-color: var(--accent); }
.progress-text { color: var(--muted); font-size: .85rem; }
dl { display: grid; grid-template-columns: repeat(auto-fill, minmax(11rem, 1fr)); gap: .4rem 1rem; margin: .75rem 0; }
dl div { min-width: 0; }
dt { color: var(--muted); font-size: .8rem; }
dd { margin: 0; font-variant-numeric: tabular-nums; }
.chart { width: 100%; max-width: 48rem; height: 9rem; display: block; }
.chart rect.exact { fill: var(--accent); }
.chart rect.estimated { fill: var(--est); }
.chart rect.current { fill: var(--warn); }
.chart text { fill: var(--muted); font-size: 10px; }
.chart-note { color: var(--muted); font-size: .8rem; }
.empty { color: var(--muted); }
`;

const SCRIPT = `
'use strict';
(function () {
  var SVG = 'http://www.w3.org/2000/svg';
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var name in attrs) node.setAttribute(name, attrs[name]);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function svg(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    for (var name in attrs) node.setAttribute(name, String(attrs[name]));
    return node;
  }
  function setLink(state, text) {
    var link = $('link');
    link.setAttribute('data-state', state);
    link.textContent = text;
  }

  function chart(rounds) {
    var width = Math.max(240, rounds.length * 28), height = 120, base = 100;
    var box = svg('svg', { 'class': 'chart', viewBox: '0 0 ' + width + ' ' + height, role: 'img',
      'aria-label': 'bytes per round', preserveAspectRatio: 'xMinYMin meet' });
    var max = 1;
    rounds.forEach(function (r) { if (r.bytes > max) max = r.bytes; });
    var slot = width / Math.max(rounds.length, 1);
    rounds.forEach(function (r, i) {
      var h = Math.max(1, Math.round((r.bytes / max) * (base - 14)));
      var bar = svg('rect', { x: (i * slot + slot * 0.1).toFixed(1), y: base - h, width: (slot * 0.8).toFixed(1), height: h,
        'class': r.current ? 'current' : r.exact ? 'exact' : 'estimated', 'data-bytes': r.bytes });
      var title = svg('title', {});
      title.textContent = r.label + ': ' + r.text;
      bar.appendChild(title);
      box.appendChild(bar);
      var label = svg('text', { x: (i * slot + slot / 2).toFixed(1), y: base + 12, 'text-anchor': 'middle' });
      label.textContent = r.label;
      box.appendChild(label);
      if (rounds.length <= 16) {
        var value = svg('text', { x: (i * slot + slot / 2).toFixed(1), y: base - h - 3, 'text-anchor': 'middle' });
        value.textContent = r.text;
        box.appendChild(value);
      }
    });
    return box;
  }

  function migration(m) {
    var section = el('section', { 'class': 'migration', 'data-migration-id': m.id, 'data-status': m.status,
      'data-ended': String(m.ended), 'data-outcome': m.outcome || '' });
    section.appendChild(el('h2', {}, (m.vm ? 'VM ' + m.vm : 'VM (name not known yet)') + ' — ' + m.headline));
    section.appendChild(el('div', { 'class': 'id' }, 'migration ' + m.id));
    var bar = el('progress', { max: '1', 'data-field': 'progress' });
    if (m.progress.share !== null) {
      bar.value = m.progress.share;
      bar.setAttribute('data-value', String(m.progress.share));
    }
    section.appendChild(bar);
    section.appendChild(el('div', { 'class': 'progress-text' }, m.progress.text));
    if (m.report) {
      section.appendChild(el('div', { 'class': 'report', 'data-field': 'report', 'data-outcome': m.report.outcome,
        'data-value': String(m.report.totalMs) }, m.report.text));
    }
    if (m.note) section.appendChild(el('div', { 'class': 'note' }, m.note));
    var list = el('dl', {});
    m.figures.forEach(function (f) {
      var item = el('div', { 'data-field': f.key, 'data-value': f.value === null ? '' : String(f.value) });
      item.appendChild(el('dt', {}, f.label));
      item.appendChild(el('dd', {}, f.text));
      list.appendChild(item);
    });
    section.appendChild(list);
    if (m.rounds.length > 0) {
      section.appendChild(chart(m.rounds));
      section.appendChild(el('div', { 'class': 'chart-note' }, m.roundsNote));
    }
    return section;
  }

  function render(view) {
    var agent = $('agent');
    agent.setAttribute('data-state', view.agent.state);
    agent.textContent = view.agent.text;
    var items = view.migrations.map(migration);
    if (items.length === 0) {
      items.push(el('p', { 'class': 'empty' }, 'No migration seen yet: start one (livemig migrate …) and it shows here.'));
    }
    $('migrations').replaceChildren.apply($('migrations'), items);
    $('updated').textContent = 'updated ' + new Date(view.at).toLocaleTimeString();
  }

  function connect() {
    var source = new EventSource('/events');
    source.onopen = function () { setLink('live', 'live'); };
    source.onmessage = function (event) {
      var view;
      try { view = JSON.parse(event.data); } catch (e) { return; }
      render(view);
    };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setLink('down', 'the dashboard refused or dropped this page; retrying in 5 s');
        setTimeout(connect, 5000);
      } else {
        setLink('down', 'connection to the dashboard lost; reconnecting…');
      }
    };
  }
  connect();
})();
`;

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/**
 * The page's Content-Security-Policy: only its own script and style, connections only to its own
 * origin, no frames around it (clickjacking), no forms, no base rewriting; the icon is an empty
 * data: URL so the browser does not ask for /favicon.ico.
 */
export const PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The page, as served (UTF-8). */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>livemig dashboard</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>livemig dashboard</h1>
<div id="agent" data-state="connecting">connecting…</div>
<div id="link" data-state="down">opening the event stream…</div>
<div id="updated" class="chart-note"></div>
</header>
<main id="migrations"><p class="empty">Waiting for the dashboard's first update…</p></main>
<script>${SCRIPT}</script>
</body>
</html>
`;
