/* dinoscope report: navigation, lazy pages, canvas maps, thumbnails on hover and the object inspector.
 * No dependency and no network: pages are data/<page>.js files added as <script> elements on navigation
 * (reading local files with the fetch API is blocked under file://). Licensed Apache-2.0 with dinoscope. */
(function () {
  "use strict";
  var boot = JSON.parse(document.getElementById("ds-boot").textContent);
  var CELL = boot.cell, GRID = boot.grid, PER = GRID * GRID;
  var UNGROUPED = "#b8bec8";
  var DS = (window.DS = { data: {}, waiting: {}, maps: {}, boot: boot });

  function pad3(n) { n = String(n); while (n.length < 3) n = "0" + n; return n; }
  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function fmt(v, d) { return v == null ? "-" : Number(v).toFixed(d == null ? 2 : d); }
  function pct(v) { return v == null ? "-" : Math.round(v * 100) + "%"; }
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  /* ---------------------------------------------------------------------------------- data files */
  DS.put = function (name, payload) {
    DS.data[name] = payload;
    (DS.waiting[name] || []).forEach(function (w) { w[0](payload); });
    delete DS.waiting[name];
  };
  DS.load = function (name) {
    return new Promise(function (resolve, reject) {
      if (DS.data[name]) return resolve(DS.data[name]);
      if (DS.waiting[name]) return DS.waiting[name].push([resolve, reject]);
      DS.waiting[name] = [[resolve, reject]];
      var s = document.createElement("script");
      s.src = "data/" + name + ".js";
      s.onerror = function () {
        (DS.waiting[name] || []).forEach(function (w) { w[1](new Error("cannot load data/" + name + ".js")); });
        delete DS.waiting[name];
      };
      document.head.appendChild(s);
    });
  };
  function classFile(c) { return "class-" + pad3(c); }

  /* ----------------------------------------------------------------------------------- thumbnails */
  function cellStyle(c, cell, size) {
    if (cell == null || cell < 0) return "";
    var i = cell % PER, r = Math.floor(i / GRID), col = i % GRID, k = size / CELL;
    return "background-image:url(thumbs/c" + pad3(c) + "-" + pad3(Math.floor(cell / PER)) + ".webp);" +
      "background-size:" + GRID * size + "px auto;background-position:-" + Math.round(col * CELL * k) + "px -" +
      Math.round(r * CELL * k) + "px";
  }
  function thumbHTML(c, cell, size) {
    var style = cellStyle(c, cell, size);
    return '<span class="th" style="width:' + size + "px;height:" + size + "px;" + style + '">' +
      (style ? "" : '<span class="nothumb">' + (cell === -2 ? "unreadable" : "no preview") + "</span>") + "</span>";
  }

  /* -------------------------------------------------------------------------------------- routing */
  var pages = ["overview", "dataset", "class", "exports"];
  function show(page) {
    pages.forEach(function (p) { var el = $("#page-" + p); if (el) el.hidden = p !== page; });
    $$(".tabs a").forEach(function (a) { a.classList.toggle("on", a.getAttribute("data-tab") === page); });
  }
  function route() {
    var parts = (location.hash || "#/overview").replace(/^#\/?/, "").split("/");
    var page = pages.indexOf(parts[0]) >= 0 ? parts[0] : "overview";
    $$(".class-list a").forEach(function (a) {
      a.classList.toggle("on", page === "class" && a.getAttribute("data-class") === parts[1]);
    });
    if (page === "class") return openClass(parseInt(parts[1], 10) || 0);
    show(page);
    if (page === "dataset") openDataset();
    window.scrollTo(0, 0);
  }
  function loading(el, text) { el.innerHTML = '<div class="loading">' + esc(text) + "</div>"; }
  function failed(el, err) { el.innerHTML = '<p class="empty">' + esc(err.message) + "</p>"; }

  var shownClass = null;
  function openClass(c) {
    var el = $("#page-class");
    show("class");
    window.scrollTo(0, 0);
    if (shownClass === c) return;
    shownClass = c;
    loading(el, "Loading " + (boot.names[c] || "class") + "...");
    DS.load(classFile(c)).then(function (d) {
      if (shownClass !== c) return;
      el.innerHTML = d.html;
      var box = $('[data-map="class"]', el);
      if (box && d.map.k.length) classMap(box, d);
    }, function (err) { failed(el, err); });
  }

  var datasetShown = false;
  function openDataset() {
    if (datasetShown) return;
    datasetShown = true;
    var el = $("#page-dataset");
    loading(el, "Loading the dataset-wide page...");
    DS.load("dataset").then(function (d) {
      el.innerHTML = d.html;
      var box = $('[data-map="global"]', el);
      if (box && d.map.x.length) globalMap(box, d);
    }, function (err) { failed(el, err); });
  }

  /* ------------------------------------------------------------------------------------- scatter */
  function Scatter(box, opt) {
    this.box = box; this.opt = opt; this.n = opt.x.length;
    this.canvas = document.createElement("canvas");
    box.appendChild(this.canvas);
    this.ctx = this.canvas.getContext("2d");
    this.hidden = {};
    this.fit();
    this.r = this.n > 20000 ? 1.6 : this.n > 5000 ? 2.2 : this.n > 1000 ? 3 : 4;
    var self = this;
    this.canvas.addEventListener("mousemove", function (e) { self.move(e); });
    this.canvas.addEventListener("mouseleave", function () { self.hover(-1); self.drag = null; });
    this.canvas.addEventListener("mousedown", function (e) { self.drag = [e.clientX, e.clientY, self.view.slice(), false]; });
    window.addEventListener("mouseup", function () { if (self.drag) setTimeout(function () { self.drag = null; }, 0); });
    this.canvas.addEventListener("click", function (e) {
      if (self.drag && self.drag[3]) return;
      var i = self.pick(e);
      if (i >= 0 && opt.click) opt.click(i);
    });
    this.canvas.addEventListener("dblclick", function () { self.fit(); self.draw(); });
    this.canvas.addEventListener("wheel", function (e) { e.preventDefault(); self.zoom(e); }, { passive: false });
    if (window.ResizeObserver) new ResizeObserver(function () { self.resize(); }).observe(box);
    this.resize();
    box.setAttribute("data-points", String(this.n));
  }
  Scatter.prototype.fit = function () {
    var x = this.opt.x, y = this.opt.y, x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (var i = 0; i < this.n; i++) {
      if (x[i] < x0) x0 = x[i]; if (x[i] > x1) x1 = x[i]; if (y[i] < y0) y0 = y[i]; if (y[i] > y1) y1 = y[i];
    }
    if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
    if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
    var px = (x1 - x0) * 0.04, py = (y1 - y0) * 0.04;
    this.view = [x0 - px, x1 + px, y0 - py, y1 + py];
  };
  Scatter.prototype.resize = function () {
    var w = this.box.clientWidth, h = this.box.clientHeight, dpr = window.devicePixelRatio || 1;
    if (!w || !h) return;
    this.w = w; this.h = h;
    this.canvas.width = Math.round(w * dpr); this.canvas.height = Math.round(h * dpr);
    this.canvas.style.width = w + "px"; this.canvas.style.height = h + "px";
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.draw();
  };
  Scatter.prototype.sx = function (v) { var q = this.view; return ((v - q[0]) / (q[1] - q[0])) * this.w; };
  Scatter.prototype.sy = function (v) { var q = this.view; return this.h - ((v - q[2]) / (q[3] - q[2])) * this.h; };
  Scatter.prototype.screenPos = function (i) {
    var b = this.canvas.getBoundingClientRect();
    return [b.left + this.sx(this.opt.x[i]), b.top + this.sy(this.opt.y[i])];
  };
  Scatter.prototype.visible = function (i) { var k = this.opt.key ? this.opt.key(i) : null; return !(k != null && this.hidden[k]); };
  Scatter.prototype.draw = function () {
    if (!this.w) return;
    var ctx = this.ctx, o = this.opt, r = this.r, last = [], grid = {}, G = 10, self = this;
    ctx.clearRect(0, 0, this.w, this.h);
    ctx.globalAlpha = 0.78;
    function dot(i, ring) {
      var px = self.sx(o.x[i]), py = self.sy(o.y[i]);
      if (px < -5 || py < -5 || px > self.w + 5 || py > self.h + 5) return;
      ctx.fillStyle = o.color(i);
      var ri = o.size ? r * o.size(i) : r;
      ctx.beginPath(); ctx.arc(px, py, ring ? ri + 1.5 : ri, 0, 6.2832); ctx.fill();
      if (ring) { ctx.lineWidth = 2; ctx.strokeStyle = "#c62828"; ctx.stroke(); }
      var key = Math.floor(px / G) + ":" + Math.floor(py / G);
      (grid[key] || (grid[key] = [])).push(i);
    }
    for (var i = 0; i < this.n; i++) {
      if (!this.visible(i)) continue;
      if (o.ring && o.ring(i)) last.push(i); else dot(i, false);
    }
    ctx.globalAlpha = 1;
    for (var j = 0; j < last.length; j++) dot(last[j], true);
    if (this.hi >= 0 && this.visible(this.hi)) {
      ctx.lineWidth = 2; ctx.strokeStyle = "#111";
      ctx.beginPath(); ctx.arc(this.sx(o.x[this.hi]), this.sy(o.y[this.hi]), r + 4, 0, 6.2832); ctx.stroke();
    }
    this.grid = grid; this.G = G;
  };
  Scatter.prototype.pick = function (e) {
    var b = this.canvas.getBoundingClientRect(), mx = e.clientX - b.left, my = e.clientY - b.top;
    var gx = Math.floor(mx / this.G), gy = Math.floor(my / this.G), best = -1, bd = 100;
    for (var dx = -1; dx <= 1; dx++) for (var dy = -1; dy <= 1; dy++) {
      var cell = this.grid[(gx + dx) + ":" + (gy + dy)];
      if (!cell) continue;
      for (var k = 0; k < cell.length; k++) {
        var i = cell[k], ddx = this.sx(this.opt.x[i]) - mx, ddy = this.sy(this.opt.y[i]) - my, d = ddx * ddx + ddy * ddy;
        if (d < bd) { bd = d; best = i; }
      }
    }
    return best;
  };
  Scatter.prototype.move = function (e) {
    if (this.drag) {
      var dx = e.clientX - this.drag[0], dy = e.clientY - this.drag[1], v = this.drag[2];
      if (Math.abs(dx) + Math.abs(dy) > 3) this.drag[3] = true;
      if (this.drag[3]) {
        var kx = (v[1] - v[0]) / this.w, ky = (v[3] - v[2]) / this.h;
        this.view = [v[0] - dx * kx, v[1] - dx * kx, v[2] + dy * ky, v[3] + dy * ky];
        this.hover(-1); this.draw(); return;
      }
    }
    var i = this.pick(e);
    this.hover(i, e);
  };
  Scatter.prototype.hover = function (i, e) {
    if (i !== this.hi) { this.hi = i; this.draw(); }
    if (this.opt.hover) this.opt.hover(i, e);
    this.canvas.style.cursor = i >= 0 ? "pointer" : "crosshair";
  };
  Scatter.prototype.zoom = function (e) {
    var b = this.canvas.getBoundingClientRect(), f = e.deltaY > 0 ? 1.2 : 1 / 1.2, v = this.view;
    var cx = v[0] + ((e.clientX - b.left) / this.w) * (v[1] - v[0]);
    var cy = v[2] + (1 - (e.clientY - b.top) / this.h) * (v[3] - v[2]);
    this.view = [cx + (v[0] - cx) * f, cx + (v[1] - cx) * f, cy + (v[2] - cy) * f, cy + (v[3] - cy) * f];
    this.draw();
  };

  /* ----------------------------------------------------------------------------------- tooltips */
  var tip = $("#tip");
  function showTip(e, html) {
    if (!e) return;
    tip.innerHTML = html; tip.hidden = false;
    var w = tip.offsetWidth, h = tip.offsetHeight, x = e.clientX + 16, y = e.clientY + 16;
    if (x + w > window.innerWidth - 8) x = e.clientX - w - 16;
    if (y + h > window.innerHeight - 8) y = e.clientY - h - 16;
    tip.style.left = x + "px"; tip.style.top = y + "px";
  }
  function hideTip() { tip.hidden = true; }
  function baseName(p) { return String(p).split("/").pop(); }

  function groupLabel(g) { return g >= 0 ? "group " + (g + 1) : "no group"; }
  function classMap(box, d) {
    var o = d.objs, m = d.map;
    var sc = new Scatter(box, {
      x: m.x, y: m.y,
      color: function (i) { var g = o.g[m.k[i]]; return g >= 0 ? (d.gcol[g] || "#6b7280") : UNGROUPED; },
      ring: function (i) { return o.o[m.k[i]]; },
      key: function (i) { return o.g[m.k[i]]; },
      hover: function (i, e) {
        if (i < 0) return hideTip();
        var k = m.k[i];
        showTip(e, thumbHTML(d.c, o.t[k], CELL) + '<div class="tt"><b>' + esc(groupLabel(o.g[k])) + "</b>" +
          (o.oq[k] != null ? "<br>outlier quality " + fmt(o.oq[k]) + (o.o[k] ? ' <span class="chip bad">outlier</span>' : "") : "") +
          (o.le[k] ? '<br><span class="chip warn">label?</span> → ' + esc(boot.names[o.sug[k]]) : "") +
          '<br><span class="muted">' + esc(baseName(d.sources[o.src[k]])) + "</span></div>");
      },
      click: function (i) { hideTip(); inspect(d.c, m.k[i], []); }
    });
    DS.maps["class"] = sc;
  }

  function shade(hex, t) {
    var n = parseInt(hex.slice(1), 16), r = n >> 16, g = (n >> 8) & 255, b = n & 255, k = Math.min(0.7, t);
    return "rgb(" + Math.round(r + (255 - r) * k) + "," + Math.round(g + (255 - g) * k) + "," + Math.round(b + (255 - b) * k) + ")";
  }
  function qualityColor(q) {
    if (q == null) return "#c3c8d0";
    var a = q < 0.5 ? [214, 39, 40] : [242, 177, 52], b = q < 0.5 ? [242, 177, 52] : [78, 121, 167];
    var t = q < 0.5 ? q / 0.5 : (q - 0.5) / 0.5;
    return "rgb(" + Math.round(a[0] + (b[0] - a[0]) * t) + "," + Math.round(a[1] + (b[1] - a[1]) * t) + "," + Math.round(a[2] + (b[2] - a[2]) * t) + ")";
  }
  function lossColor(v) {
    if (v == null) return "#c3c8d0";
    v = Math.max(0, Math.min(1, v));
    return "rgb(" + Math.round(40 + 215 * v) + "," + Math.round(30 + 190 * v) + "," + Math.round(120 - 90 * v) + ")";
  }
  function globalMap(box, d) {
    var m = d.map, mode = m.l ? "loss" : "class";
    var colorOf = {
      "class": function (i) { return boot.colors[m.c[i]]; },
      group: function (i) { return m.g[i] < 0 ? UNGROUPED : shade(boot.colors[m.c[i]], (m.g[i] % 5) * 0.16); },
      quality: function (i) { return qualityColor(m.q[i]); },
      split: function (i) { return d.split_colors[m.s[i]]; },
      loss: function (i) { return lossColor(m.l[i]); }
    };
    var keyOf = {
      "class": function (i) { return m.c[i]; }, group: function (i) { return m.c[i]; },
      quality: function () { return null; }, split: function (i) { return "s" + m.s[i]; },
      loss: function () { return null; }
    };
    var sc = new Scatter(box, {
      x: m.x, y: m.y,
      color: function (i) { return colorOf[mode](i); },
      ring: function (i) { return mode !== "quality" && mode !== "loss" && m.o[i]; },
      size: function (i) { return mode === "loss" ? 0.6 + 1.6 * (m.l[i] == null ? 0.2 : m.l[i]) : 1; },
      key: function (i) { return keyOf[mode](i); },
      hover: function (i, e) {
        if (i < 0) return hideTip();
        showTip(e, thumbHTML(m.c[i], m.t[i], CELL) + '<div class="tt"><b>' + esc(boot.names[m.c[i]]) + "</b><br>" +
          esc(groupLabel(m.g[i])) + " · " + esc(boot.splits[m.s[i]]) +
          (m.q[i] != null ? "<br>outlier quality " + fmt(m.q[i]) : "") +
          (m.l && m.l[i] != null ? "<br>loss " + fmt(m.l[i]) : "") + "</div>");
      },
      click: function (i) { hideTip(); if (m.k[i] >= 0) inspect(m.c[i], m.k[i], []); }
    });
    DS.maps.global = sc;
    function legend() {
      var keys = $("#global-keys"), html = "";
      if (mode === "loss") {
        html = '<span class="grad"><i style="background:linear-gradient(90deg,' + lossColor(0) + "," + lossColor(0.5) + "," +
          lossColor(1) + ')"></i></span><span class="muted">detector loss: 0 small, dark · 1 large, yellow</span>';
      } else if (mode === "quality") {
        html = '<span class="grad"><i style="background:linear-gradient(90deg,' + qualityColor(0) + "," + qualityColor(0.5) + "," +
          qualityColor(1) + ')"></i></span><span class="muted">0 unusual · 0.5 flag threshold · 1 typical</span>';
      } else if (mode === "split") {
        boot.splits.forEach(function (s, j) { html += '<span class="key" data-k="s' + j + '"><i class="sw" style="background:' + d.split_colors[j] + '"></i>' + esc(s) + "</span>"; });
      } else {
        var counts = {};
        for (var i = 0; i < m.c.length; i++) counts[m.c[i]] = (counts[m.c[i]] || 0) + 1;
        boot.names.forEach(function (nm, c) {
          if (!counts[c]) return;
          html += '<span class="key" data-k="' + c + '"><i class="sw" style="background:' + boot.colors[c] + '"></i>' + esc(nm) + " <small>" + counts[c].toLocaleString() + "</small></span>";
        });
        if (mode === "group") html += '<span class="muted">shades of a class colour = its sub-groups; grey = no group</span>';
      }
      keys.innerHTML = html;
      $$(".key", keys).forEach(function (el) {
        var k = el.getAttribute("data-k");
        if (sc.hidden[k]) el.classList.add("off");
        el.addEventListener("click", function () { sc.hidden[k] = !sc.hidden[k]; el.classList.toggle("off"); sc.draw(); });
      });
    }
    var picker = $("#color-by");
    if (picker) picker.addEventListener("change", function () { mode = picker.value; sc.hidden = {}; legend(); sc.draw(); });
    legend();
  }

  /* ---------------------------------------------------------------------------------- inspector */
  var modal = $("#inspector"), current = null;
  function inspect(c, k, list) {
    DS.load(classFile(c)).then(function (d) { render(d, k, list); }, function (err) {
      modal.hidden = false;
      modal.innerHTML = '<div class="modal-back"></div><div class="modal-card"><p class="empty">' + esc(err.message) + "</p></div>";
    });
  }
  function render(d, k, list) {
    var o = d.objs, c = d.c, src = d.sources[o.src[k]], box = o.box[k], wh = o.wh[k], fr = o.fr[k];
    current = { list: list, pos: list.indexOf(c + ":" + k) };
    // The original image when the dataset is where the run saw it (full resolution), else the downscaled
    // copy shipped with the report; the <img> error handler walks down this list.
    var sources = [];
    if (d.root != null && fr < 0) sources.push(d.root + src.split("/").map(encodeURIComponent).join("/"));
    if (o.ctx[k] >= 0) sources.push(d.ctx[o.ctx[k]]);
    var W = wh[0], H = wh[1], fit = Math.min(680 / W, (0.72 * window.innerHeight) / H);
    var missing = '<div class="frame none"><p class="muted">The source ' + (fr >= 0 ? "frame" : "image") +
      " is not shipped with the report (only listed objects are) and the dataset folder is not reachable from here: " +
      esc(src) + (fr >= 0 ? ", frame " + fr : "") + "</p></div>";
    var pic = sources.length
      ? '<div class="frame"><img alt="source image" style="width:' + Math.round(W * fit) + 'px" src="' + esc(sources[0]) + '"><svg viewBox="0 0 ' + W + " " + H + '" preserveAspectRatio="none">' +
        '<rect x="' + box[0] + '" y="' + box[1] + '" width="' + Math.max(1, box[2] - box[0]) + '" height="' + Math.max(1, box[3] - box[1]) +
        '" vector-effect="non-scaling-stroke"/></svg></div>'
      : missing;
    var ref = o.ref[k] || "", m = /^(.*):(\d+)$/.exec(ref);
    var label = m ? esc(m[1]) + ' <span class="muted">line</span> ' + m[2] : ref ? esc(ref) : "-";
    var rows = [
      ["class", '<i class="sw" style="background:' + boot.colors[c] + '"></i>' + esc(boot.names[c])],
      ["file", esc(src) + (d.root != null ? ' <a class="open" target="_blank" href="' + esc(d.root + src.split("/").map(encodeURIComponent).join("/")) + '">open</a>' : "")],
      ["label", label],
      ["frame", fr >= 0 ? String(fr) : "-"],
      ["split", esc(boot.splits[o.sp[k]])],
      ["box (px)", box.map(function (v) { return Math.round(v); }).join(", ") + ' <span class="muted">(' + Math.round(box[2] - box[0]) + " × " + Math.round(box[3] - box[1]) + " in " + W + " × " + H + ")</span>"],
      ["sub-group", esc(groupLabel(o.g[k]))],
      ["outlier quality", o.oq[k] == null ? "-" : fmt(o.oq[k]) + (o.o[k] ? ' <span class="chip bad">outlier' + (o.why[k] ? ": " + esc(o.why[k]) : "") + "</span>" : "")],
      ["label quality", o.lq[k] == null ? "-" : fmt(o.lq[k]) + (o.le[k] ? ' <span class="chip warn">suggested: ' + esc(boot.names[o.sug[k]]) + " (" + pct(o.ss[k]) + ")</span>" : "")],
      ["separability", fmt(o.sq[k])],
      ["duplicate group", o.dg[k] >= 0 ? String(o.dg[k]) + (o.keep[k] ? " (keep)" : " (drop)") + (o.lk[k] ? ' <span class="chip bad">crosses splits</span>' : "") : "-"],
      ["object id", "<code>" + esc(o.id[k]) + "</code>"]
    ];
    if (o.nn) rows.push(["similar objects", '<button class="similar" type="button">show ' + o.nn[k].length + "</button>"]);
    var nav = list.length > 1
      ? '<button class="nav prev" title="previous (←)">‹</button><span class="muted">' + (current.pos + 1) + " / " + list.length + '</span><button class="nav next" title="next (→)">›</button>'
      : "";
    modal.innerHTML = '<div class="modal-back"></div><div class="modal-card" role="dialog" aria-label="object">' +
      '<div class="modal-head"><b>' + esc(baseName(src)) + "</b>" + nav + '<button class="close" title="close (Esc)">×</button></div>' +
      '<div class="insp"><div class="insp-img">' + pic + "</div>" +
      '<div class="insp-info">' + thumbHTML(c, o.t[k], CELL) + '<table class="kv">' +
      rows.map(function (r) { return "<tr><th>" + r[0] + "</th><td>" + r[1] + "</td></tr>"; }).join("") + "</table></div></div></div>";
    modal.hidden = false;
    var im = $(".frame img", modal), tried = 0;
    if (im) im.addEventListener("error", function () {
      tried += 1;
      if (tried < sources.length) im.src = sources[tried];
      else im.parentNode.outerHTML = missing;
    });
    var sim = $("button.similar", modal);
    if (sim) sim.addEventListener("click", function () { showSimilar(o.nn[k], sim); });
    $(".modal-back", modal).addEventListener("click", closeModal);
    $(".close", modal).addEventListener("click", closeModal);
    if (list.length > 1) {
      $(".prev", modal).addEventListener("click", function () { step(-1); });
      $(".next", modal).addEventListener("click", function () { step(1); });
    }
  }
  // The nearest objects of the whole run, shipped per object (report/similar.py): a shipped one is a
  // thumbnail that opens in the inspector, any other is listed by its label reference.
  function showSimilar(nn, button) {
    var list = nn.filter(function (n) { return n[1] >= 0; }).map(function (n) { return n[0] + ":" + n[1]; });
    var items = nn.map(function (n) {
      var cap = '<span class="muted small">' + fmt(n[3], 3) + " · " + esc(n[4]) + "</span>";
      return n[1] >= 0
        ? '<div class="sim-item"><a class="th" href="#" data-o="' + n[0] + ":" + n[1] + '">' + thumbHTML(n[0], n[2], CELL) + "</a>" + cap + "</div>"
        : '<div class="sim-item">' + cap + "</div>";
    });
    var box = document.createElement("div");
    box.className = "similar-list";
    box.setAttribute("data-list", list.join(","));
    box.innerHTML = items.join("") || '<p class="empty">No similar object.</p>';
    button.parentNode.replaceChild(box, button);
  }
  function step(delta) {
    if (!current || current.list.length < 2) return;
    var pos = (current.pos + delta + current.list.length) % current.list.length, ref = current.list[pos].split(":");
    inspect(parseInt(ref[0], 10), parseInt(ref[1], 10), current.list);
  }
  function closeModal() { modal.hidden = true; modal.innerHTML = ""; current = null; }
  document.addEventListener("keydown", function (e) {
    if (modal.hidden) return;
    if (e.key === "Escape") closeModal();
    else if (e.key === "ArrowLeft") step(-1);
    else if (e.key === "ArrowRight") step(1);
  });
  document.addEventListener("click", function (e) {
    var a = e.target.closest ? e.target.closest("a.th[data-o]") : null;
    if (!a) return;
    e.preventDefault();
    var ref = a.getAttribute("data-o").split(":"), holder = a.parentNode;
    var list = $$("a.th[data-o]", holder).map(function (t) { return t.getAttribute("data-o"); });
    if (parseInt(ref[1], 10) >= 0) inspect(parseInt(ref[0], 10), parseInt(ref[1], 10), list);
  });

  /* --------------------------------------------------------------------------- tables, sidebar */
  $$("table.sortable").forEach(function (table) {
    $$("th[data-sort]", table).forEach(function (th, col) {
      th.addEventListener("click", function () {
        var num = th.getAttribute("data-sort") === "num", dir = th.classList.contains("asc") ? -1 : 1;
        $$("th", table).forEach(function (h) { h.classList.remove("asc", "desc"); });
        th.classList.add(dir > 0 ? "asc" : "desc");
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute("data-value"), y = b.cells[col].getAttribute("data-value");
          if (num) { x = x === "" ? -Infinity : parseFloat(x); y = y === "" ? -Infinity : parseFloat(y); return (x - y) * dir; }
          return String(x).localeCompare(String(y)) * dir;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  $$("table.classes tbody tr").forEach(function (tr) {
    tr.addEventListener("click", function (e) {
      if (e.target.closest("a")) return;
      location.hash = "#/class/" + tr.getAttribute("data-class");
    });
  });
  var filter = $("#class-filter");
  if (filter) filter.addEventListener("input", function () {
    var q = filter.value.trim().toLowerCase();
    $$(".class-list a").forEach(function (a) { a.hidden = q && a.getAttribute("data-name").indexOf(q) < 0; });
  });

  window.addEventListener("hashchange", route);
  route();
  document.documentElement.setAttribute("data-ready", "1");
})();
