/**
 * The dashboard's only stylesheet and script, served by the Worker itself (no CDN, no build step). The Content
 * Security Policy allows nothing else, so no page can load anything from another origin.
 *
 * A backslash at the end of a line inside these templates is a line continuation: the served text has no line break
 * there, so a long rule or statement reads across two source lines and is served exactly as written on one.
 */

export const DASHBOARD_CSS = `
:root{--fg:#1a1a1a;--muted:#4a4a4a;--bg:#fff;--panel:#f4f5f7;--line:#c9ccd1;--accent:#0b57d0;--ok:#0a6b2d;\
--warn:#8a4b00;--bad:#b3261e;--okbg:#e3f4e8;--warnbg:#fff4e0;--badbg:#fdecea}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;overflow-wrap:break-word;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;\
color:var(--fg);background:var(--bg)}
a{color:var(--accent)}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,textarea:focus-visible,\
summary:focus-visible{outline:3px solid #f5a623;outline-offset:2px}
.skip{position:absolute;left:-999px;top:0;background:#fff;padding:.5rem}
.skip:focus{left:.5rem;z-index:10}
header.top{background:#13233a;color:#fff;padding:.5rem 1rem;display:flex;flex-wrap:wrap;gap:.5rem 1rem;\
align-items:center}
header.top a{color:#fff}
header.top .role{font-size:.875rem}
header.top .brand{font-weight:700;text-decoration:none;margin-right:auto}
header.top form{display:flex;gap:.25rem;align-items:center;margin:0}
header.top label{font-size:.875rem}
nav.tabs{display:flex;flex-wrap:wrap;gap:.25rem;padding:.5rem 1rem;border-bottom:1px solid var(--line);\
background:var(--panel)}
nav.tabs a{padding:.25rem .6rem;border-radius:4px;text-decoration:none}
nav.tabs a[aria-current=page]{background:var(--accent);color:#fff}
main{max-width:72rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.25rem 0 1rem;overflow-wrap:anywhere}
h2{font-size:1.2rem;margin:1.5rem 0 .5rem}
h3{font-size:1rem;margin:1rem 0 .25rem}
.panel{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:.75rem 1rem;margin:.75rem 0}
.notice{border-left:6px solid var(--accent);padding:.5rem .75rem;margin:.75rem 0;background:#eef3fd}
.notice.ok{border-color:var(--ok);background:var(--okbg)}
.notice.warn{border-color:var(--warn);background:var(--warnbg)}
.notice.bad{border-color:var(--bad);background:var(--badbg)}
.badge{display:inline-block;padding:0 .45rem;border-radius:999px;font-size:.8rem;font-weight:600;\
border:1px solid currentColor;white-space:nowrap}
.badge.ok{color:var(--ok)}.badge.warn{color:var(--warn)}.badge.bad{color:var(--bad)}.badge.muted{color:var(--muted)}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%;font-size:.925rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--panel)}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem;overflow-wrap:anywhere}
pre{white-space:pre-wrap;background:var(--panel);border:1px solid var(--line);padding:.5rem;margin:.25rem 0;\
max-height:20rem;overflow:auto}
form.stack{display:grid;gap:.5rem;max-width:40rem}
form.inline{display:inline-flex;flex-wrap:wrap;max-width:100%;gap:.25rem;align-items:center;margin:.1rem 0}
label{font-weight:600}
.field{display:grid;gap:.15rem}
.hint{font-weight:400;color:var(--muted);font-size:.875rem}
input[type=text],input[type=email],input[type=url],input[type=password],input[type=datetime-local],select,\
textarea{font:inherit;padding:.4rem .5rem;border:1px solid #767676;border-radius:4px;width:100%;max-width:40rem;\
background:#fff;color:var(--fg)}
textarea{min-height:6rem;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85rem}
header.top select{width:auto;padding:.2rem}
form.inline input,form.inline select{width:auto;max-width:100%}
button,.button{font:inherit;padding:.35rem .8rem;border-radius:4px;border:1px solid var(--accent);\
background:var(--accent);color:#fff;cursor:pointer;text-decoration:none;display:inline-block}
button.secondary,.button.secondary{background:#fff;color:var(--accent)}
button.danger{background:var(--bad);border-color:var(--bad)}
header.top button{background:#fff;color:#13233a;border-color:#fff;padding:.15rem .5rem}
fieldset{border:1px solid var(--line);border-radius:6px;padding:.5rem .75rem}
legend{font-weight:600}
.checks label{font-weight:400}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .75rem;margin:.5rem 0}
dl.kv dt{font-weight:600}
dl.kv dd{margin:0;overflow-wrap:anywhere}
.ids{font-size:.875rem;color:var(--muted)}
.copy{font-size:.8rem;padding:.05rem .4rem;margin-left:.25rem}
.secret{font-size:1rem;padding:.5rem;background:#fff;border:2px dashed var(--warn);display:inline-block;\
overflow-wrap:anywhere}
svg.spark{vertical-align:middle}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,26rem),1fr));gap:1rem}
figure.chart{margin:0;min-width:0}
figure.chart figcaption{font-weight:600}
svg.chart{display:block;width:100%;height:auto}
svg.chart .grid{stroke:#dfe1e5;stroke-width:1}
svg.chart .axis{font-size:13px;fill:#4a4a4a}
.o-succeeded{fill:#0a6b2d;background:#0a6b2d}.o-retrying{fill:#c77700;background:#c77700}
.o-dead{fill:#b3261e;background:#b3261e}.o-skipped{fill:#8d939b;background:#8d939b}
polyline.l-p50{stroke:#0b57d0;stroke-width:2}polyline.l-p95{stroke:#8a4b00;stroke-width:2;stroke-dasharray:6 3}
circle.l-p50,.key.l-p50{fill:#0b57d0;background:#0b57d0}circle.l-p95,.key.l-p95{fill:#8a4b00;background:#8a4b00}
.e-7d{fill:#f2b8b5;background:#f2b8b5}.e-24h{fill:#b3261e;background:#b3261e}
ul.legend{display:flex;flex-wrap:wrap;gap:.1rem 1rem;list-style:none;padding:0;margin:.25rem 0;font-size:.875rem}
.key{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-1px;border-radius:2px}
footer.page{max-width:72rem;margin:2rem auto 1rem;padding:0 1rem;border-top:1px solid var(--line)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(16rem,1fr));gap:.75rem}
ul.findings{padding-left:1.2rem}
details.via-api{margin:.25rem 0 .5rem;font-size:.875rem}
details.via-api summary{color:var(--muted)}
.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
@media (max-width:40rem){main{padding:.5rem}.scroll table:not(.cards){min-width:36rem}h1{font-size:1.25rem}\
dl.kv{grid-template-columns:1fr}dl.kv dt{margin-top:.35rem}th,td{padding:.3rem}\
table.cards thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}\
table.cards,table.cards tbody,table.cards tr,table.cards td{display:block;width:100%}\
table.cards tr{border:1px solid var(--line);border-radius:6px;margin:0 0 .5rem;padding:.25rem .6rem}\
table.cards td{border:0;padding:.2rem 0}\
table.cards td[data-label]::before{content:attr(data-label);display:block;font-size:.8rem;font-weight:600;\
color:var(--muted)}}
`;

/**
 * The dashboard's one script, a progressive enhancement (every page works without it):
 * - copy buttons (`data-copy` names the element whose text is copied) and confirmations on destructive forms;
 * - times (`<time datetime>`, rendered in UTC by the server) shown in the browser's time zone with the UTC value in the
 *   title, relative ("3 min ago") within a day unless inside `[data-abs]`; chart axis labels (`data-at`) likewise;
 * - tables (`table.stack`) labelled cell by cell from their header, so that on a narrow screen they stack into cards;
 * - live status (docs/design.md#dashboard): while an element inside a `[data-live]` region is `[data-open]` (a delivery
 *   not yet terminal), the page at the region's `data-live` URL (this origin) is fetched every few seconds while the
 *   tab is visible and each region is replaced by its fresh copy; polling stops once nothing is open.
 */
export const DASHBOARD_JS = `
document.addEventListener('click', function (e) {
  var b = e.target.closest && e.target.closest('button[data-copy]');
  if (!b) return;
  var el = document.getElementById(b.getAttribute('data-copy'));
  if (!el) return;
  var text = el.textContent.trim();
  var done = function () { var t = b.textContent; b.textContent = 'Copied'; \
setTimeout(function () { b.textContent = t; }, 1500); };
  if (navigator.clipboard && navigator.clipboard.writeText) \
navigator.clipboard.writeText(text).then(done, function () {});
  else { var r = document.createRange(); r.selectNodeContents(el); var s = getSelection(); s.removeAllRanges(); \
s.addRange(r); document.execCommand('copy'); done(); }
});
document.addEventListener('submit', function (e) {
  var f = e.target;
  var msg = f.getAttribute && f.getAttribute('data-confirm');
  if (msg && !confirm(msg)) e.preventDefault();
});
(function () {
  var pad = function (n) { return (n < 10 ? '0' : '') + n; };
  var utc = function (d) { return d.toISOString().replace('T', ' ').replace(/\\.\\d+Z$/, ' UTC'); };
  var full = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  var hour = function (d) { return pad(d.getHours()) + ':' + pad(d.getMinutes()); };
  var day = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
  function ago(ms) {
    var s = Math.round(Math.abs(ms) / 1000), v, u;
    if (s < 45) return ms >= 0 ? 'just now' : 'in a few seconds';
    if (s < 3600) { v = Math.round(s / 60); u = 'min'; } else { v = Math.round(s / 3600); u = 'h'; }
    return ms >= 0 ? v + ' ' + u + ' ago' : 'in ' + v + ' ' + u;
  }
  function times(root) {
    root.querySelectorAll('time[datetime]').forEach(function (t) {
      var d = new Date(t.getAttribute('datetime'));
      if (isNaN(d.getTime())) return;
      var age = Date.now() - d.getTime();
      var local = full.format(d);
      if (Math.abs(age) < 86400000 && !t.closest('[data-abs]')) {
        t.textContent = ago(age);
        t.title = local + ' (' + utc(d) + ')';
      } else {
        t.textContent = local;
        t.title = utc(d);
      }
    });
    root.querySelectorAll('text[data-at]').forEach(function (t) {
      var d = new Date(t.getAttribute('data-at'));
      if (!isNaN(d.getTime())) t.textContent = t.getAttribute('data-fmt') === 'day' ? day.format(d) : hour(d);
    });
  }
  function stack(root) {
    root.querySelectorAll('table.stack').forEach(function (table) {
      var heads = [].map.call(table.querySelectorAll('thead th'), function (th) { return th.textContent.trim(); });
      table.querySelectorAll('tbody tr').forEach(function (tr) {
        [].forEach.call(tr.children, function (td, i) {
          if (td.colSpan === 1 && heads[i]) td.setAttribute('data-label', heads[i]);
        });
      });
      table.classList.add('cards');
    });
  }
  function enhance(root) { times(root); stack(root); }
  var open = function () { return document.querySelector('[data-live] [data-open]') !== null; };
  var timer = null;
  var busy = false;
  function stop() {
    clearInterval(timer);
    timer = null;
    document.removeEventListener('visibilitychange', tick);
  }
  function tick() {
    var first = document.querySelector('[data-live]');
    if (!first || busy || document.hidden) return;
    busy = true;
    window.fetch(first.getAttribute('data-live'), { credentials: 'same-origin', headers: { accept: 'text/html' } })
      .then(function (r) { return r.ok && !r.redirected ? r.text() : null; })
      .then(function (html) {
        busy = false;
        if (html === null) return stop();
        var fresh = new DOMParser().parseFromString(html, 'text/html');
        document.querySelectorAll('[data-live]').forEach(function (el) {
          var next = fresh.getElementById(el.id);
          // Never pull a control from under the user's focus: this region waits for the next round.
          if (!next || el.contains(document.activeElement)) return;
          el.innerHTML = next.innerHTML;
          enhance(el);
        });
        document.documentElement.setAttribute('data-live-updated', String(Date.now()));
        if (!open()) stop();
      }, function () { busy = false; });
  }
  function start() {
    enhance(document);
    if (open()) {
      timer = setInterval(tick, 3000);
      document.addEventListener('visibilitychange', tick);
    }
    setInterval(function () { if (!document.hidden) times(document); }, 30000);
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
`;
