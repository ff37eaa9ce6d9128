/**
 * The /flows page: a table of recent flows and requests, filters, and a detail panel. Static:
 * the script (/flows.js) fetches the records and listens for new ones. No inline script, no
 * external assets (the admin listener must work without internet; the CSP forbids the rest).
 */
export const FLOWS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>tollgate flows</title>
<style>
*{box-sizing:border-box}
body{font:13px/1.4 system-ui,sans-serif;margin:0;color:#1d2327;background:#fff}
header{display:flex;flex-wrap:wrap;gap:.6rem;align-items:center;padding:.6rem 1rem;border-bottom:1px solid #ddd;background:#f6f7f8;position:sticky;top:0}
header h1{font-size:1.1rem;margin:0 1rem 0 0}
header label{display:flex;gap:.3rem;align-items:center}
input,select{font:inherit;padding:.15rem .3rem;border:1px solid #bbb;border-radius:3px}
input[type=text]{width:11rem}
#f-more{width:16rem}
#live{padding:.1rem .5rem;border-radius:8px;background:#ddd}
#live.on{background:#d7f5dd;color:#137333}
#count,#filter-error{color:#555}
#filter-error{color:#b3261e}
main{display:flex;align-items:flex-start}
#list{flex:1;overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.2rem .5rem;border-bottom:1px solid #eee;white-space:nowrap;vertical-align:top}
th{background:#fafafa;position:sticky;top:0}
td.url{max-width:22rem;overflow:hidden;text-overflow:ellipsis}
td.num{text-align:right}
#rows tr{cursor:pointer}
#rows tr:hover{background:#f0f4ff}
#rows tr.deny td.action{color:#b3261e;font-weight:600}
#rows tr.selected{background:#e3ecff}
#rows tr.connection td.kind{color:#555}
#detail{width:28rem;max-width:40%;border-left:1px solid #ddd;padding:.6rem 1rem;position:sticky;top:3rem;max-height:calc(100vh - 3rem);overflow:auto}
#detail[hidden]{display:none}
#detail h2{font-size:1rem;margin:.2rem 0 .6rem}
#detail h3{font-size:.9rem;margin:1rem 0 .3rem}
#detail dl{display:grid;grid-template-columns:max-content 1fr;gap:.1rem .8rem;margin:0}
#detail dt{color:#555}
#detail dd{margin:0;word-break:break-all}
.empty{padding:2rem 1rem;color:#777}
code{font:12px ui-monospace,monospace}
</style></head><body>
<header>
<h1>tollgate flows</h1>
<label>name <input id="f-name" type="text" placeholder="*.example.com" autocomplete="off"></label>
<label>user <input id="f-user" type="text" placeholder="alice" autocomplete="off"></label>
<label>action <select id="f-action"><option value="">any</option><option>deny</option><option>splice</option><option>inspect</option><option>none</option></select></label>
<label>status <input id="f-status" type="text" placeholder="4xx or >=400" autocomplete="off" style="width:7rem"></label>
<label>more <input id="f-more" type="text" placeholder="type=request rule=storage" autocomplete="off"></label>
<span id="live">connecting</span>
<span id="count"></span>
<span id="filter-error"></span>
</header>
<main>
<div id="list">
<table>
<thead><tr><th>time</th><th>kind</th><th>client</th><th>user</th><th>method</th><th>destination</th><th>status</th><th>action</th><th>rule</th><th>ms</th><th>bytes</th></tr></thead>
<tbody id="rows"></tbody>
</table>
<p id="empty" class="empty">No records yet. Traffic through the gateway shows up here as it happens.</p>
</div>
<aside id="detail" hidden></aside>
</main>
<script src="/flows.js"></script>
</body></html>
`;
