// flowc's graph viewer: draws the laid-out views embedded in the page (no network, no eval).
(function () {
  "use strict";
  var T0 = performance.now();
  var DATA = JSON.parse(document.getElementById("flowc-data").textContent);
  var PARSE_MS = performance.now() - T0;
  var svg = document.getElementById("canvas"), root = document.getElementById("root");
  var tip = document.getElementById("tip"), q = document.getElementById("q");
  var LOD = 0.25;  // below this zoom, boxes are drawn without text, batched per colour
  var V = null, T = { x: 0, y: 0, s: 1 }, hits = [], hitAt = -1, queued = false;

  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }

  // -- collapse state: which node stands for each node (itself, a proxy, or -2: hidden) -----
  function derive() {
    var cl = V.clusters, top = new Array(cl.length), i;
    for (i = 0; i < cl.length; i++) {  // parents come before children in the list
      var p = cl[i].p, up = p >= 0 ? top[p] : -1;
      top[i] = up >= 0 ? up : (cl[i].open ? -1 : i);
    }
    V.rep = V.nodes.map(function (n, j) {
      if (n.k === "proxy") return cl[n.pc].open || top[n.pc] !== n.pc ? -2 : j;
      var t = n.c >= 0 ? top[n.c] : -1;
      return t < 0 ? j : cl[t].px;
    });
    // Edges between what is shown: rerouted to proxies, internal ones dropped, no repeats.
    var seen = {}, out = [];
    V.edges.forEach(function (e) {
      var a = V.rep[e[0]], b = V.rep[e[1]];
      if (a < 0 || b < 0 || a === b) return;
      var direct = a === e[0] && b === e[1], key = a + ">" + b;
      if (!direct) { if (seen[key]) return; seen[key] = 1; }
      var A = V.nodes[a], B = V.nodes[b];
      var pts = [[A.x + A.w / 2, A.y + A.h]].concat(direct && e[2] ? e[2] : [])
        .concat([[B.x + B.w / 2, B.y]]);
      var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
      pts.forEach(function (p) {
        x0 = Math.min(x0, p[0]); y0 = Math.min(y0, p[1]);
        x1 = Math.max(x1, p[0]); y1 = Math.max(y1, p[1]);
      });
      out.push({ pts: pts, box: [x0, y0, x1, y1] });
    });
    V.shown = out;
  }

  function edgePath(pts) {
    if (pts.length === 2) {  // a gentle S-curve from the bottom of one box to the top of the next
      var a = pts[0], b = pts[1], m = (a[1] + b[1]) / 2;
      return "M" + a[0] + " " + a[1] + "C" + a[0] + " " + m + " " + b[0] + " " + m + " " +
        b[0] + " " + b[1];
    }
    return "M" + pts.map(function (p) { return p[0] + " " + p[1]; }).join("L");
  }

  // -- drawing: only what is in (or near) the window -----------------------------------------
  function viewRect() {
    var r = svg.getBoundingClientRect(), m = 0.25;
    var w = r.width / T.s, h = r.height / T.s, x = -T.x / T.s, y = -T.y / T.s;
    return [x - w * m, y - h * m, x + w * (1 + m), y + h * (1 + m)];
  }

  function meets(r, x0, y0, x1, y1) { return x1 >= r[0] && x0 <= r[2] && y1 >= r[1] && y0 <= r[3]; }

  function render() {
    queued = false;
    var r = viewRect(), lod = T.s < LOD, out = [], drawn = 0, i, n;
    root.setAttribute("transform", "translate(" + T.x + "," + T.y + ") scale(" + T.s + ")");
    V.clusters.forEach(function (c, j) {  // open scope clusters: a dashed box with a title
      if (c.k !== "scope" || !c.open) return;
      if (!meets(r, c.x, c.y, c.x + c.w, c.y + c.h)) return;
      out.push('<g class="cl" data-cluster="' + esc(c.n) + '"><rect x="' + c.x + '" y="' + c.y +
        '" width="' + c.w + '" height="' + c.h + '" rx="6"/>' + (lod ? "" : '<text x="' +
        (c.x + 6) + '" y="' + (c.y + 16) + '">\u2212 ' + esc(c.n) + "</text>") + "</g>");
    });
    for (i = 0; i < V.nodes.length; i++) {  // loop frames under their bodies
      n = V.nodes[i];
      if (n.k !== "frame" || V.rep[i] !== i || !meets(r, n.x, n.y, n.x + n.w, n.y + n.h)) continue;
      var lc = V.frameOf[i], open = V.clusters[lc].open;
      out.push('<g class="fr" data-i="' + i + '" data-id="' + esc(n.i) + '" data-cluster="' +
        esc(V.clusters[lc].n) + '"><rect x="' + n.x + '" y="' + n.y + '" width="' + n.w +
        '" height="' + n.h + '" rx="6"/>' + (lod ? "" : '<text x="' + (n.x + 6) + '" y="' +
        (n.y + 18) + '">' + (open ? "\u2212 " : "+ ") + esc(n.a) + " " + esc(n.b) +
        "</text>") + "</g>");
      drawn++;
    }
    var d = [];
    V.shown.forEach(function (e) {
      if (meets(r, e.box[0], e.box[1], e.box[2], e.box[3])) d.push(edgePath(e.pts));
    });
    out.push('<path class="e" d="' + d.join("") + '"/>');
    var byFill = {};
    for (i = 0; i < V.nodes.length; i++) {
      n = V.nodes[i];
      if (n.k === "frame" || V.rep[i] !== i || !meets(r, n.x, n.y, n.x + n.w, n.y + n.h)) continue;
      drawn++;
      if (lod) {  // one path per colour: thousands of boxes stay cheap when zoomed out
        (byFill[n.f] = byFill[n.f] || []).push("M" + n.x + " " + n.y + "h" + n.w + "v" + n.h +
          "h" + (-n.w) + "z");
        continue;
      }
      out.push('<g class="n' + (n.k === "proxy" ? " px" : "") + (hits[hitAt] === i ? " hit" : "") +
        '" data-i="' + i + '" data-id="' + esc(n.i) + '"><rect x="' + n.x + '" y="' + n.y +
        '" width="' + n.w + '" height="' + n.h + '" rx="4" fill="' + n.f + '"/><text x="' +
        (n.x + 8) + '" y="' + (n.y + 17) + '">' + (n.k === "proxy" ? "+ " : "") + esc(n.a) +
        '</text><text class="s" x="' + (n.x + 8) + '" y="' + (n.y + 32) + '">' + esc(n.b) +
        "</text></g>");
    }
    Object.keys(byFill).forEach(function (f) {
      out.push('<path d="' + byFill[f].join("") + '" fill="' + f +
        '" stroke="#555" stroke-width="' + (1 / T.s) + '"/>');
    });
    root.innerHTML = out.join("");
    document.getElementById("stats").textContent = drawn + " of " + V.nodes.length +
      " boxes drawn, zoom " + T.s.toFixed(2);
  }

  function later() { if (!queued) { queued = true; requestAnimationFrame(render); } }

  // -- views, fitting, collapsing -------------------------------------------------------------
  function setView(j) {
    V = DATA.views[j];
    if (!V.frameOf) {
      V.frameOf = {};
      V.clusters.forEach(function (c, k) {
        if (c.open === undefined) c.open = true;
        if (c.k === "loop") V.frameOf[c.px] = k;
      });
    }
    Array.prototype.forEach.call(document.querySelectorAll("#views button"), function (b, k) {
      b.className = k === j ? "on" : "";
    });
    hits = []; hitAt = -1;
    derive(); fit(true); render(); search();
  }

  // The whole picture in the window; `start`: a very tall one opens at its top instead,
  // as wide as the window allows, since a whole 5,000-node chain would be a hairline.
  function fit(start) {
    var r = svg.getBoundingClientRect(), x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    V.nodes.concat(V.clusters).forEach(function (n) {  // scope boxes reach past their members
      x0 = Math.min(x0, n.x); y0 = Math.min(y0, n.y);
      x1 = Math.max(x1, n.x + n.w); y1 = Math.max(y1, n.y + n.h);
    });
    var wide = (r.width - 20) / Math.max(x1 - x0, 1);
    T.s = Math.min(2, wide, (r.height - 20) / Math.max(y1 - y0, 1));
    if (start && T.s < 0.1) T.s = Math.min(1, wide);
    T.x = (r.width - (x1 + x0) * T.s) / 2; T.y = 10 - y0 * T.s;
  }

  function toggle(c, open) {
    var cl = V.clusters[c];
    cl.open = open === undefined ? !cl.open : open;
    derive(); render();
  }

  function setAll(open) { V.clusters.forEach(function (c) { c.open = open; }); derive(); render(); }

  // Focus: centre node i at zoom >= 1, opening the clusters that hide it.
  function focus(i) {
    var n = V.nodes[i], c = n.c;
    while (c >= 0) { V.clusters[c].open = true; c = V.clusters[c].p; }
    derive();
    var r = svg.getBoundingClientRect();
    T.s = Math.max(T.s, 1);
    T.x = r.width / 2 - (n.x + n.w / 2) * T.s; T.y = r.height / 2 - (n.y + n.h / 2) * T.s;
    render();
  }

  // -- pointer: which box is under it --------------------------------------------------------
  function at(ev) {
    var r = svg.getBoundingClientRect();
    return [(ev.clientX - r.left - T.x) / T.s, (ev.clientY - r.top - T.y) / T.s];
  }

  function nodeAt(p) {
    var best = -1, i, n;
    for (i = V.nodes.length - 1; i >= 0; i--) {  // plain boxes before the loop frames around them
      n = V.nodes[i];
      if (V.rep[i] !== i || p[0] < n.x || p[0] > n.x + n.w || p[1] < n.y || p[1] > n.y + n.h) continue;
      if (n.k !== "frame") return i;
      if (best < 0 || n.w * n.h < V.nodes[best].w * V.nodes[best].h) best = i;
    }
    return best;
  }

  function headerAt(p) {  // the title strip of an open scope box or of a loop frame
    for (var j = V.clusters.length - 1; j >= 0; j--) {
      var c = V.clusters[j], n = V.nodes[c.px];
      var box = c.k === "loop" ? n : c;
      if (c.k === "scope" && !c.open) continue;
      if (c.k === "loop" && V.rep[c.px] !== c.px) continue;
      // Only the title text: scope boxes may overlap, their titles rarely do.
      var title = c.k === "loop" ? (n.a + " " + n.b).length : c.n.length;
      var x1 = box.x + Math.min(box.w, 20 + 7 * title);
      if (p[0] >= box.x && p[0] <= x1 && p[1] >= box.y && p[1] <= box.y + 24) return j;
    }
    return -1;
  }

  function tipText(i) {
    var n = V.nodes[i], d = n.d || {}, rows = ["<b>" + esc(n.a) + "</b> " + esc(n.i)];
    ["name", "op", "dtype", "shape", "type", "attrs", "phase", "time", "scope", "nodes"]
      .forEach(function (k) { if (d[k] !== undefined) rows.push(k + ": " + esc(d[k])); });
    if (d.line) rows.push("made at " + esc(d.line) + (d.code ? "\n<code>" + esc(d.code) + "</code>" : ""));
    if (n.k === "proxy") rows.push("(collapsed: click to expand)");
    return rows.join("\n");
  }

  function hover(ev) {
    var i = nodeAt(at(ev));
    if (i < 0) { tip.style.display = "none"; tip.removeAttribute("data-i"); return; }
    tip.innerHTML = tipText(i);
    tip.setAttribute("data-i", i);
    tip.style.display = "block";
    tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - 300) + "px";
    tip.style.top = (ev.clientY + 14) + "px";
  }

  var drag = null;
  svg.addEventListener("mousedown", function (ev) { drag = [ev.clientX, ev.clientY, T.x, T.y, false]; });
  window.addEventListener("mouseup", function (ev) {
    if (drag && !drag[4]) click(ev);
    drag = null;
  });
  svg.addEventListener("mousemove", function (ev) {
    if (drag && (drag[4] || Math.abs(ev.clientX - drag[0]) + Math.abs(ev.clientY - drag[1]) > 3)) {
      drag[4] = true;
      T.x = drag[2] + ev.clientX - drag[0]; T.y = drag[3] + ev.clientY - drag[1];
      root.setAttribute("transform", "translate(" + T.x + "," + T.y + ") scale(" + T.s + ")");
      later();
      return;
    }
    hover(ev);
  });
  svg.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    zoomAt(ev.clientX, ev.clientY, Math.exp(-ev.deltaY * 0.0015));
    later();
  }, { passive: false });

  function zoomAt(cx, cy, k) {
    var r = svg.getBoundingClientRect(), px = cx - r.left, py = cy - r.top;
    var s = Math.max(0.02, Math.min(4, T.s * k));
    T.x = px - (px - T.x) * s / T.s; T.y = py - (py - T.y) * s / T.s; T.s = s;
  }

  function click(ev) {
    var p = at(ev), j = headerAt(p);
    if (j >= 0) { toggle(j); return; }
    var i = nodeAt(p);
    if (i >= 0 && V.nodes[i].k === "proxy") toggle(V.nodes[i].pc, true);
  }

  // -- search --------------------------------------------------------------------------------
  function search() {
    var s = q.value.trim().toLowerCase();
    hits = []; hitAt = -1;
    if (s) {
      V.nodes.forEach(function (n, i) {
        if (n.k === "proxy") return;
        var d = n.d || {};
        var text = (n.i + " " + n.a + " " + n.b + " " + (d.name || "")).toLowerCase();
        if (text.indexOf(s) >= 0) hits.push(i);
      });
    }
    document.getElementById("hits").textContent = s ? hits.length + " found" : "";
  }
  q.addEventListener("input", function () { search(); render(); });
  q.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && hits.length) { hitAt = (hitAt + 1) % hits.length; focus(hits[hitAt]); }
  });
  document.getElementById("fit").onclick = function () { fit(); render(); };
  document.getElementById("open-all").onclick = function () { setAll(true); };
  document.getElementById("close-all").onclick = function () { setAll(false); };

  var bar = document.getElementById("views");
  DATA.views.forEach(function (v, j) {
    var b = document.createElement("button");
    b.textContent = v.stage;
    b.title = v.title + " (" + v.nodes.length + " boxes)";
    b.onclick = function () { setView(j); };
    bar.appendChild(b);
  });
  setView(0);
  var LOAD_MS = performance.now();  // since navigation began: parsing the page included

  // -- #selftest: drive the page as a user would and write what happened into the DOM --------
  if (location.hash === "#selftest") {
    var res = { views: DATA.views.map(function (v) { return v.stage; }), load_ms: LOAD_MS,
                parse_ms: PARSE_MS, script_ms: LOAD_MS - T0, nodes: V.nodes.length };
    var r = svg.getBoundingClientRect();
    var n0 = V.nodes.findIndex(function (n) { return n.k === ""; });
    focus(n0);
    res.drawn_at_zoom1 = root.querySelectorAll("g.n").length;
    res.in_dom = !!root.querySelector('g.n[data-i="' + n0 + '"]');
    // Hover: a mouse move over a node that knows its line shows that line.
    var h = V.nodes.findIndex(function (n) { return n.k === "" && n.d && n.d.line; });
    if (h >= 0) {
      focus(h);
      var hn = V.nodes[h];
      svg.dispatchEvent(new MouseEvent("mousemove", { bubbles: true,
        clientX: r.left + T.x + (hn.x + hn.w / 2) * T.s,
        clientY: r.top + T.y + (hn.y + hn.h / 2) * T.s }));
      res.hover_id = hn.i; res.hover_line = hn.d.line;
      res.tip = tip.style.display === "block" ? tip.textContent : "";
    }
    // Collapse: the first scope and the first loop: members leave the DOM, the stand-in shows.
    res.collapse = {};
    r = svg.getBoundingClientRect();
    ["scope", "loop"].forEach(function (kind) {
      var c = V.clusters.findIndex(function (c) { return c.k === kind && c.m > 0; });
      if (c < 0) return;
      var cl = V.clusters[c], members = [], got = { name: cl.n };
      V.nodes.forEach(function (n, i) { if (n.c === c) members.push(i); });
      function present() {
        return members.filter(function (i) {
          return root.querySelector('[data-i="' + i + '"]'); }).length;
      }
      T.s = 1; T.x = -cl.x + 20; T.y = -cl.y + 20; render();
      got.members = members.length; got.before = present();
      // A click on the cluster's title, as a user would collapse it.
      var box = kind === "loop" ? V.nodes[cl.px] : cl;
      var at = { bubbles: true, clientX: r.left + T.x + (box.x + 10) * T.s,
                 clientY: r.top + T.y + (box.y + 10) * T.s };
      svg.dispatchEvent(new MouseEvent("mousedown", at));
      window.dispatchEvent(new MouseEvent("mouseup", at));
      got.closed_by_click = !cl.open;
      got.after = present();
      got.stand_in = !!root.querySelector('[data-i="' + cl.px + '"]');
      toggle(c, true);
      got.reopened = present();
      res.collapse[kind] = got;
    });
    // Search by name.
    var named = V.nodes.find(function (n) { return n.d && n.d.name; });
    if (named) {
      q.value = named.d.name; search();
      res.search = named.d.name; res.search_hits = hits.length;
      q.value = ""; search();
    }
    // Zoom: time full redraws from the fitted picture in to zoom 2 and back out.
    fit(); render();
    var t = performance.now(), steps = 0, k;
    for (k = 0; k < 24; k++, steps++) {  // in 12 steps, out 12; offsetHeight: style and layout
      zoomAt(r.left + r.width / 2, r.top + r.height / 2, k < 12 ? 1.5 : 1 / 1.5);
      render(); void document.body.offsetHeight;
    }
    res.zoom_ms_per_step = (performance.now() - t) / steps;
    res.view_boxes = DATA.views.map(function (v, j) {
      setView(j); return [v.stage, v.nodes.length]; });
    setView(0);
    var pre = document.getElementById("selftest");
    pre.textContent = JSON.stringify(res);
  }
})();
