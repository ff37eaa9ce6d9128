/**
 * The script of /flows, served as /flows.js. Plain browser JavaScript, no build step. Every
 * value from a record is written with textContent, never as HTML: paths, names and reasons come
 * from clients and origins.
 */
export const FLOWS_SCRIPT = `'use strict';
(function () {
  var MAX_ROWS = 500;
  var rows = document.getElementById('rows');
  var live = document.getElementById('live');
  var count = document.getElementById('count');
  var empty = document.getElementById('empty');
  var detail = document.getElementById('detail');
  var filterError = document.getElementById('filter-error');
  var inputs = ['f-name', 'f-user', 'f-action', 'f-status', 'f-more'].map(function (id) { return document.getElementById(id); });
  var source = null;
  var selected = null;
  var generation = 0;

  function filterExpression() {
    var parts = [];
    var name = inputs[0].value.trim(), user = inputs[1].value.trim(), action = inputs[2].value, status = inputs[3].value.trim(), more = inputs[4].value.trim();
    if (name) parts.push('name=' + (name.indexOf('*') >= 0 ? name : '*' + name + '*'));
    if (user) parts.push('user=' + user);
    if (action) parts.push('action=' + action);
    if (status) parts.push(/^[<>]/.test(status) ? 'status' + status : 'status=' + status);
    if (more) parts.push(more);
    return parts.join(' ');
  }

  function cell(tr, text, cls) {
    var td = document.createElement('td');
    td.textContent = text === null || text === undefined || text === '' ? '-' : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
  }

  function destination(r) {
    if (r.type === 'udp_association') return (r.destinations || []).map(function (d) { return 'udp://' + d.target; }).join(' ');
    if (r.type !== 'request') return r.target;
    return /^[a-z][a-z0-9+.-]*:\\/\\//i.test(r.path) ? r.path : r.scheme + '://' + (r.host.indexOf(':') >= 0 ? '[' + r.host + ']' : r.host) + ':' + r.port + r.path;
  }

  function row(r) {
    var tr = document.createElement('tr');
    tr.className = r.type + (r.action === 'deny' ? ' deny' : '') + (selected === r.flow_id ? ' selected' : '');
    tr.dataset.flow = r.flow_id;
    tr.dataset.seq = r.seq;
    cell(tr, (r.time || '').slice(11, 23));
    cell(tr, r.type === 'request' ? 'request' : r.frontend, 'kind');
    cell(tr, r.client);
    cell(tr, r.user);
    cell(tr, r.type === 'request' ? r.method : r.type === 'udp_association' ? 'UDP' : (r.frontend === 'explicit-http' || r.frontend === 'transparent-http' || r.frontend === 'reverse' ? '' : 'CONNECT'));
    cell(tr, destination(r), 'url');
    cell(tr, r.type === 'request' ? r.status : r.close, 'num');
    cell(tr, r.action, 'action');
    cell(tr, r.http_rule || r.rule);
    cell(tr, Math.round(r.duration_ms), 'num');
    cell(tr, r.bytes_to_client, 'num');
    tr.addEventListener('click', function () { showFlow(r.flow_id, r.seq); });
    return tr;
  }

  function updateCount() {
    var n = rows.children.length;
    count.textContent = n + (n === 1 ? ' record' : ' records');
    empty.hidden = n > 0;
  }

  function prepend(r) {
    if (rows.querySelector('tr[data-seq="' + r.seq + '"]')) return;
    rows.insertBefore(row(r), rows.firstChild);
    while (rows.children.length > MAX_ROWS) rows.removeChild(rows.lastChild);
    updateCount();
  }

  function setLive(state) {
    live.textContent = state;
    live.className = state === 'live' ? 'on' : '';
  }

  function reload() {
    var mine = ++generation;
    var expr = filterExpression();
    if (source) { source.close(); source = null; }
    setLive('connecting');
    fetch('/flows/records?limit=200&filter=' + encodeURIComponent(expr)).then(function (res) {
      return res.json().then(function (body) { return { ok: res.ok, body: body }; });
    }).then(function (result) {
      if (mine !== generation) return;
      if (!result.ok) { filterError.textContent = result.body.error || 'bad filter'; setLive('stopped'); return; }
      filterError.textContent = '';
      rows.textContent = '';
      result.body.records.slice().reverse().forEach(prepend);
      updateCount();
      source = new EventSource('/flows/events?filter=' + encodeURIComponent(expr));
      source.onopen = function () { setLive('live'); };
      source.onerror = function () { setLive('reconnecting'); };
      source.onmessage = function (event) { prepend(JSON.parse(event.data)); };
      source.addEventListener('dropped', function (event) { count.textContent += ' (' + event.data + ' not shown: too fast)'; });
    }).catch(function () { if (mine === generation) setLive('offline'); });
  }

  function field(dl, name, value) {
    if (value === null || value === undefined || value === '' || (Array.isArray(value) && value.length === 0)) return;
    var dt = document.createElement('dt');
    dt.textContent = name;
    var dd = document.createElement('dd');
    dd.textContent = typeof value === 'object' ? JSON.stringify(value) : String(value);
    dl.appendChild(dt);
    dl.appendChild(dd);
  }

  function describe(parent, r) {
    var dl = document.createElement('dl');
    Object.keys(r).forEach(function (key) { if (key !== 'seq') field(dl, key, r[key]); });
    parent.appendChild(dl);
  }

  function showFlow(flowId, seq) {
    selected = flowId;
    Array.prototype.forEach.call(rows.children, function (tr) { tr.classList.toggle('selected', tr.dataset.flow === flowId); });
    fetch('/flows/flow/' + encodeURIComponent(flowId)).then(function (res) { return res.json(); }).then(function (body) {
      if (selected !== flowId) return;
      detail.textContent = '';
      detail.hidden = false;
      var h2 = document.createElement('h2');
      h2.textContent = 'Flow ' + flowId;
      detail.appendChild(h2);
      var records = body.records;
      var connection = records.filter(function (r) { return r.type === 'connection'; })[0];
      var requests = records.filter(function (r) { return r.type === 'request'; });
      var summary = document.createElement('p');
      summary.id = 'detail-summary';
      summary.textContent = (connection ? connection.frontend + ' ' + (connection.target || '') + ', ' + connection.action + ', closed: ' + connection.close : 'open or no longer kept') +
        '; ' + requests.length + (requests.length === 1 ? ' request' : ' requests');
      detail.appendChild(summary);
      if (requests.length > 0) {
        var h3 = document.createElement('h3');
        h3.textContent = 'Requests';
        detail.appendChild(h3);
        var table = document.createElement('table');
        table.id = 'detail-requests';
        requests.forEach(function (r) {
          var tr = document.createElement('tr');
          tr.className = r.action === 'deny' ? 'deny' : '';
          cell(tr, r.method);
          cell(tr, r.path, 'url');
          cell(tr, r.status, 'num');
          cell(tr, r.action);
          cell(tr, r.http_rule || r.rule);
          cell(tr, Math.round(r.duration_ms), 'num');
          table.appendChild(tr);
        });
        detail.appendChild(table);
      }
      var chosen = records.filter(function (r) { return r.seq === seq; })[0] || connection || records[0];
      if (chosen) {
        var h3b = document.createElement('h3');
        h3b.textContent = chosen.type === 'request' ? 'Request ' + chosen.request_id : 'Connection';
        detail.appendChild(h3b);
        describe(detail, chosen);
      }
    });
  }

  var timer = null;
  inputs.forEach(function (input) {
    input.addEventListener(input.tagName === 'SELECT' ? 'change' : 'input', function () {
      clearTimeout(timer);
      timer = setTimeout(reload, 250);
    });
  });
  reload();
})();
`;
