// The dashboard page: it reads frames from the server's event stream
// (relative URL "events") and draws them. Rates and quantiles come from
// the server; the page only keeps a minute of history for the charts.
"use strict";

(function () {
  const interval = Number(document.body.dataset.interval) || 250;
  const historySeconds = 60;
  const $ = (id) => document.getElementById(id);

  // Colours of well-known resources; others get a hue from their name.
  const oreColours = {
    iron: "#9fb2c6", copper: "#e08a3c", coal: "#77736e", stone: "#c4ae7e",
    uranium: "#7fe04a", steel: "#d3dae2", plastic: "#f1f1f1", oil: "#7a5bb0",
    sulfur: "#e6d84a", water: "#4aa3e0", circuit: "#4fc160",
  };
  function oreColour(name) {
    const key = Object.keys(oreColours).find((k) => name.toLowerCase().includes(k));
    if (key) return oreColours[key];
    let h = 0;
    for (const c of name) h = (h * 31 + c.codePointAt(0)) >>> 0;
    return `hsl(${h % 360}, 55%, 62%)`;
  }

  const fmtInt = new Intl.NumberFormat("en-US");
  function fmtRate(r) {
    if (r >= 10000) return (r / 1000).toFixed(1) + "k/s";
    if (r >= 100) return Math.round(r) + "/s";
    return r.toFixed(r >= 10 ? 0 : 1) + "/s";
  }
  function fmtDur(s) {
    if (!s) return "–";
    if (s < 1e-6) return (s * 1e9).toFixed(0) + "ns";
    if (s < 1e-3) return (s * 1e6).toFixed(s < 1e-5 ? 1 : 0) + "µs";
    if (s < 1) return (s * 1e3).toFixed(s < 1e-2 ? 2 : 1) + "ms";
    return s.toFixed(2) + "s";
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---- buses and belts ----------------------------------------------------

  const buses = new Map(); // resource -> view
  let refRate = 1; // the belt rate drawn at full speed, smoothed

  function busView(resource) {
    let v = buses.get(resource);
    if (v) return v;
    const colour = oreColour(resource);
    const art = el("article", "bus");
    art.dataset.bus = resource;
    art.id = "bus-" + resource;
    art.style.setProperty("--ore", colour);

    const head = el("header", "bus-head");
    head.append(el("span", "ore"), el("h2", "", resource));
    const chip = el("span", "chip");
    head.append(chip);
    const nums = el("div", "bus-nums");
    const field = (label, cls) => {
      const s = el("span", cls || "");
      const b = el("b", "", "0");
      s.append(label + " ", b);
      nums.append(s);
      return { span: s, b };
    };
    const f = {
      in: field("in"), out: field("out"), depth: field("queued"),
      blocked: field("blocked"), dropped: field("dropped"), rejected: field("rejected"),
      failed: field("failed"),
    };
    head.append(nums);

    const body = el("div", "bus-body");
    const belts = el("div", "belts");
    belts.dataset.belts = resource;
    const hist = el("div", "history");
    const hh = el("div", "history-head");
    const peak = el("span", "", "");
    const span = el("span", "", "10 s");
    const title = el("span", "", "throughput · ");
    title.append(span);
    hh.append(title, peak);
    const spark = el("canvas", "spark");
    spark.dataset.chart = resource;
    const lat = el("div", "lat");
    const latCell = () => el("b", "", "–");
    const q = { q50: latCell(), q99: latCell(), h50: latCell(), h99: latCell() };
    lat.append(el("span", "", "last interval"), el("b", "", "p50"), el("b", "", "p99"),
      el("span", "", "queue"), q.q50, q.q99, el("span", "", "handler"), q.h50, q.h99);
    hist.append(hh, spark, lat);
    body.append(belts, hist);
    art.append(head, body);
    $("buses").append(art);

    v = { art, colour, chip, f, belts, spark, peak, span, q, lanes: [], history: [] };
    buses.set(resource, v);
    return v;
  }

  function laneView(v, i) {
    if (v.lanes[i]) return v.lanes[i];
    const row = el("div", "belt-row");
    row.dataset.bus = v.art.dataset.bus;
    row.dataset.conveyor = String(i);
    row.dataset.state = "idle";
    row.id = `belt-${v.art.dataset.bus}-${i}`;
    const canvas = el("canvas", "belt");
    const nums = el("div", "lane-nums");
    const rate = el("span", "lane-rate", "0/s");
    const depth = el("span", "lane-depth", "0/0");
    nums.append(rate, depth);
    row.append(el("span", "lane-label", "L" + i), canvas, nums);
    v.belts.append(row);
    const lane = {
      row, canvas, rate, depth, phase: 0, speed: 0, target: 0,
      fill: 0, fillTarget: 0, blocked: 0, dropUntil: 0, density: 0, densityTarget: 0,
      lastDropped: null, colour: v.colour, seed: Math.imul(i + 1, 7919) + v.lanes.length,
    };
    v.lanes[i] = lane;
    return lane;
  }

  // ---- frames ---------------------------------------------------------------

  let lastFrameAt = 0;

  function onFrame(f) {
    lastFrameAt = performance.now();
    setStatus("live", "live");
    const empty = $("no-buses");
    if (empty) empty.hidden = f.buses.length > 0;
    if (!f.buses.length && empty) empty.textContent = "No buses.";

    let consumed = 0, rate = 0, blocked = 0, dropped = 0, depth = 0, maxLane = 0;
    for (const b of f.buses) {
      for (const c of b.conveyors) if (c.active) maxLane = Math.max(maxLane, c.rate.consumed);
    }
    refRate = Math.max(refRate * 0.9, maxLane, 1);

    const now = performance.now();
    for (const b of f.buses) {
      const v = busView(b.resource);
      const t = b.total;
      consumed += t.consumed; rate += t.rate.consumed; blocked += t.blocked;
      dropped += t.dropped; depth += t.depth;
      v.chip.textContent = b.active + (b.active === 1 ? " conveyor" : " conveyors") +
        (b.draining ? ` · ${b.draining} draining` : "");
      v.f.in.b.textContent = fmtRate(t.rate.produced);
      v.f.out.b.textContent = fmtRate(t.rate.consumed);
      v.f.depth.b.textContent = `${fmtInt.format(t.depth)}/${fmtInt.format(t.capacity)}`;
      v.f.blocked.b.textContent = String(t.blocked);
      v.f.blocked.span.className = t.blocked > 0 ? "bad" : "";
      v.f.dropped.b.textContent = fmtInt.format(t.dropped);
      v.f.dropped.span.className = t.rate.dropped > 0 ? "warn" : "";
      v.f.rejected.b.textContent = fmtInt.format(t.rejected);
      v.f.rejected.span.className = t.rate.rejected > 0 ? "warn" : "";
      v.f.failed.b.textContent = fmtInt.format(t.failed + t.panicked);
      v.f.failed.span.className = t.failed + t.panicked > 0 ? "warn" : "";
      v.q.q50.textContent = fmtDur(t.queueTime.last.p50);
      v.q.q99.textContent = fmtDur(t.queueTime.last.p99);
      v.q.h50.textContent = fmtDur(t.handlerTime.last.p50);
      v.q.h99.textContent = fmtDur(t.handlerTime.last.p99);
      v.art.dataset.consumed = String(t.consumed);

      if (f.interval > 0) {
        // Rates over short intervals jitter; the chart draws them smoothed
        // over about three quarters of a second.
        const a = Math.min(1, (f.interval * 1000) / 750);
        const last = v.history[v.history.length - 1];
        const ema = (k, x) => (last ? last[k] + a * (x - last[k]) : x);
        v.history.push({
          at: now, p: ema("p", t.rate.produced), c: ema("c", t.rate.consumed),
          d: ema("d", t.rate.dropped),
        });
      }
      while (v.history.length && now - v.history[0].at > historySeconds * 1000) {
        v.history.shift();
      }
      v.spark.dataset.points = String(v.history.length);

      for (const c of b.conveyors) {
        const lane = laneView(v, c.conveyor);
        lane.row.dataset.active = String(c.active);
        const fill = c.capacity > 0 ? c.depth / c.capacity : (c.blocked > 0 ? 1 : 0);
        lane.fillTarget = Math.min(1, fill);
        lane.target = c.rate.consumed;
        lane.densityTarget = Math.min(1, 0.15 + 0.85 * (c.rate.produced / refRate));
        if (c.rate.produced === 0 && c.rate.consumed === 0) lane.densityTarget = c.depth ? 0.2 : 0;
        lane.blocked = c.blocked;
        lane.row.dataset.state = c.blocked > 0 ? "blocked" : (c.rate.consumed > 0 ? "moving" : "idle");
        lane.row.dataset.blocked = String(c.blocked);
        lane.row.dataset.depth = String(c.depth);
        lane.rate.textContent = fmtRate(c.rate.consumed);
        lane.depth.textContent = `${c.depth}/${c.capacity}`;
        lane.depth.style.setProperty("--fill", (100 * lane.fillTarget).toFixed(1) + "%");
        lane.row.title = `L${c.conveyor}: produced ${fmtInt.format(c.produced)}, ` +
          `consumed ${fmtInt.format(c.consumed)}, dropped ${fmtInt.format(c.dropped)}, ` +
          `blocked ${c.blocked}, queue p99 ${fmtDur(c.queueTime.last.p99)}, ` +
          `handler p99 ${fmtDur(c.handlerTime.last.p99)}`;
        const dropping = lane.lastDropped !== null && c.dropped > lane.lastDropped;
        lane.row.dataset.dropping = String(dropping);
        if (dropping) {
          lane.dropUntil = now + 700;
          lane.row.classList.remove("flash");
          void lane.row.offsetWidth; // restart the animation
          lane.row.classList.add("flash");
        }
        lane.lastDropped = c.dropped;
      }
      drawChart(v);
    }

    const tc = $("total-consumed");
    tc.textContent = fmtInt.format(consumed);
    tc.dataset.value = String(consumed);
    $("total-rate").textContent = fmtRate(rate);
    $("total-depth").textContent = fmtInt.format(depth);
    $("total-blocked").textContent = String(blocked);
    $("total-blocked-box").classList.toggle("hot", blocked > 0);
    $("total-dropped").textContent = fmtInt.format(dropped);
    $("total-dropped-box").classList.toggle("warn", dropped > 0);
    if (f.title && document.title.indexOf(f.title) !== 0) document.title = f.title + " · belts";
    updateKnobs(f.knobs || []);
  }

  // ---- drawing --------------------------------------------------------------

  function fitCanvas(c) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(c.clientWidth * dpr));
    const h = Math.max(1, Math.round(c.clientHeight * dpr));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return { ctx, w: c.clientWidth, h: c.clientHeight };
  }

  // hash01 gives each item slot on a belt a fixed number in [0, 1), so an
  // item stays on or off the belt as the belt moves it.
  function hash01(n) {
    let x = Math.imul(n ^ 0x9e3779b9, 0x85ebca6b);
    x ^= x >>> 13; x = Math.imul(x, 0xc2b2ae35); x ^= x >>> 16;
    return (x >>> 0) / 4294967296;
  }

  const maxSpeed = 150; // px/s of the fastest belt

  function drawBelt(lane, dt, now) {
    if (lane.row.dataset.active === "false") return;
    const { ctx, w, h } = fitCanvas(lane.canvas);
    const k = 1 - Math.exp(-dt * 4);
    lane.speed += ((maxSpeed * lane.target) / refRate - lane.speed) * k;
    lane.fill += (lane.fillTarget - lane.fill) * k;
    lane.density += (lane.densityTarget - lane.density) * k;
    lane.phase += lane.speed * dt;

    const rail = 4, top = rail, bot = h - rail, mid = h / 2;
    const machineW = 18;
    const beltEnd = w - machineW;
    const blocked = lane.blocked > 0;
    const pulse = 0.55 + 0.45 * Math.sin(now / 160);

    ctx.clearRect(0, 0, w, h);
    // The belt surface and its moving chevrons.
    ctx.fillStyle = "#3a3834";
    ctx.fillRect(0, top, beltEnd, bot - top);
    ctx.save();
    ctx.beginPath();
    ctx.rect(0, top, beltEnd, bot - top);
    ctx.clip();
    ctx.strokeStyle = "rgba(227, 180, 28, 0.38)";
    ctx.lineWidth = 2;
    const gap = 12, off = lane.phase % gap;
    for (let x = -gap + off; x < beltEnd + gap; x += gap) {
      ctx.beginPath();
      ctx.moveTo(x - 4, top + 2);
      ctx.lineTo(x + 1, mid);
      ctx.lineTo(x - 4, bot - 2);
      ctx.stroke();
    }

    // The queue at the consumer's end: the belt's fill level.
    const qLen = lane.fill * (beltEnd - 6);
    const qStart = beltEnd - qLen;
    if (qLen > 0.5) {
      ctx.fillStyle = blocked ? `rgba(255, 74, 61, ${0.22 + 0.18 * pulse})` : "rgba(227, 180, 28, 0.22)";
      ctx.fillRect(qStart, top, qLen, bot - top);
    }

    // Items travelling towards the queue.
    const spacing = 16, size = h - 2 * rail - 8;
    const first = Math.floor(-lane.phase / spacing) - 1;
    for (let n = first; ; n++) {
      const x = n * spacing + lane.phase;
      if (x > qStart - size) break;
      if (x < -size) continue;
      if (hash01(n + lane.seed) >= lane.density) continue;
      plate(ctx, x, mid - size / 2, size, lane.colour);
    }
    // Items waiting in the queue, packed tight.
    const packed = size * 0.72;
    for (let x = beltEnd - size - 2; x >= qStart; x -= packed) {
      plate(ctx, x, mid - size / 2, size, lane.colour);
    }
    ctx.restore();

    // The rails: yellow, red under backpressure, orange after a drop.
    let railColour = "#e3b41c";
    if (blocked) railColour = `rgba(255, 74, 61, ${0.6 + 0.4 * pulse})`;
    if (now < lane.dropUntil) railColour = "#ff9d2e";
    ctx.fillStyle = "#15140f";
    ctx.fillRect(0, 0, beltEnd, rail);
    ctx.fillRect(0, bot, beltEnd, rail);
    ctx.fillStyle = railColour;
    ctx.fillRect(0, 1, beltEnd, 2);
    ctx.fillRect(0, bot + 1, beltEnd, 2);

    // The consumer at the end of the belt: lit while it works.
    ctx.fillStyle = "#24231f";
    ctx.fillRect(beltEnd, 0, machineW, h);
    ctx.fillStyle = "#4a4742";
    ctx.fillRect(beltEnd + 2, 2, machineW - 4, h - 4);
    const busy = lane.target > 0;
    ctx.fillStyle = busy ? lane.colour : "#2c2b28";
    ctx.globalAlpha = busy ? 0.6 + 0.4 * Math.abs(Math.sin(lane.phase / 9)) : 1;
    ctx.fillRect(beltEnd + 6, mid - 3, machineW - 12, 6);
    ctx.globalAlpha = 1;

    // Drops spill off the start of the belt.
    if (now < lane.dropUntil) {
      const a = (lane.dropUntil - now) / 700;
      ctx.fillStyle = `rgba(255, 157, 46, ${a})`;
      for (let i = 0; i < 4; i++) {
        ctx.fillRect(4 + i * 7, mid - 2 + (i % 2 ? -6 : 6) * (1 - a), 4, 4);
      }
    }
  }

  function plate(ctx, x, y, s, colour) {
    ctx.fillStyle = "rgba(0, 0, 0, 0.45)";
    ctx.fillRect(x + 1, y + 1.5, s, s);
    ctx.fillStyle = colour;
    ctx.fillRect(x, y, s, s);
    ctx.fillStyle = "rgba(255, 255, 255, 0.35)";
    ctx.fillRect(x, y, s, 2);
    ctx.fillStyle = "rgba(0, 0, 0, 0.25)";
    ctx.fillRect(x, y + s - 2, s, 2);
  }

  function drawChart(v) {
    const { ctx, w, h } = fitCanvas(v.spark);
    ctx.clearRect(0, 0, w, h);
    const now = performance.now();
    // The chart spans the history it has, from 10 s up to a minute.
    const age = v.history.length ? now - v.history[0].at : 0;
    const span = Math.min(historySeconds * 1000, Math.max(10000, age));
    v.span.textContent = Math.round(span / 1000) + " s";
    let top = 1;
    for (const p of v.history) top = Math.max(top, p.p, p.c);
    top *= 1.15;
    v.peak.textContent = "max " + fmtRate(top / 1.15);
    const X = (at) => w - ((now - at) / span) * w;
    const Y = (r) => h - 2 - (r / top) * (h - 6);

    ctx.strokeStyle = "rgba(255, 255, 255, 0.06)";
    ctx.lineWidth = 1;
    for (let i = 1; i < 4; i++) {
      ctx.beginPath();
      ctx.moveTo(0, Math.round((h * i) / 4) + 0.5);
      ctx.lineTo(w, Math.round((h * i) / 4) + 0.5);
      ctx.stroke();
    }
    if (v.history.length < 2) return;

    // Consumed: a filled yellow area.
    ctx.beginPath();
    ctx.moveTo(X(v.history[0].at), h);
    for (const p of v.history) ctx.lineTo(X(p.at), Y(p.c));
    ctx.lineTo(X(v.history[v.history.length - 1].at), h);
    ctx.closePath();
    const g = ctx.createLinearGradient(0, 0, 0, h);
    g.addColorStop(0, "rgba(227, 180, 28, 0.45)");
    g.addColorStop(1, "rgba(227, 180, 28, 0.03)");
    ctx.fillStyle = g;
    ctx.fill();
    line(ctx, v.history, X, Y, (p) => p.c, "#e3b41c", []);
    line(ctx, v.history, X, Y, (p) => p.p, "rgba(232, 226, 214, 0.7)", [4, 3]);
    if (v.history.some((p) => p.d > 0)) {
      line(ctx, v.history, X, Y, (p) => p.d, "#ff9d2e", []);
    }
  }

  function line(ctx, pts, X, Y, get, colour, dash) {
    ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(X(p.at), Y(get(p))) : ctx.moveTo(X(p.at), Y(get(p)))));
    ctx.setLineDash(dash);
    ctx.strokeStyle = colour;
    ctx.lineWidth = 1.5;
    ctx.stroke();
    ctx.setLineDash([]);
  }

  let lastDraw = performance.now();
  function animate(now) {
    const dt = Math.min(0.1, (now - lastDraw) / 1000);
    lastDraw = now;
    for (const v of buses.values()) for (const lane of v.lanes) if (lane) drawBelt(lane, dt, now);
    if (lastFrameAt && now - lastFrameAt > 3 * interval + 1500 && status.dataset.state === "live") {
      setStatus("stalled", "stalled");
    }
    requestAnimationFrame(animate);
  }

  // ---- knobs ----------------------------------------------------------------

  const knobs = new Map(); // name -> view
  let knobOrder = "";

  function fmtKnob(k, v) {
    if (v === null || v === undefined) return "–";
    const digits = k.step < 1 ? Math.min(3, String(k.step).split(".")[1]?.length || 1) : 0;
    return Number(v).toFixed(digits) + (k.unit ? " " + k.unit : "");
  }

  function updateKnobs(list) {
    const order = list.map((k) => k.name).join("\u0000");
    if (order !== knobOrder) buildKnobs(list, order);
    for (const k of list) {
      const v = knobs.get(k.name);
      if (!v || v.busy || v.dragging || k.value === null) continue;
      if (Number(v.input.value) !== k.value) v.input.value = String(k.value);
      v.out.textContent = fmtKnob(k, k.value);
      v.row.dataset.value = String(k.value);
      paintRange(v.input);
    }
  }

  function buildKnobs(list, order) {
    knobOrder = order;
    const box = $("knobs");
    box.textContent = "";
    knobs.clear();
    if (!list.length) box.append(el("p", "muted", "No knobs on this dashboard."));
    list.forEach((k, i) => {
      const row = el("div", "knob");
      row.dataset.knob = k.name;
      const input = el("input");
      input.type = "range";
      input.id = "knob-" + i;
      input.min = String(k.min);
      input.max = String(k.max);
      input.step = String(k.step);
      input.value = String(k.value ?? k.min);
      input.dataset.knob = k.name;
      const label = el("label");
      label.htmlFor = input.id;
      const out = el("output", "", fmtKnob(k, k.value));
      label.append(el("span", "", k.name), out);
      const range = el("div", "knob-range");
      range.append(el("span", "", fmtKnob(k, k.min)), el("span", "", fmtKnob(k, k.max)));
      row.append(label, input, range);
      box.append(row);
      const v = { k, row, input, out, busy: false, dragging: false };
      input.addEventListener("input", () => {
        v.dragging = true;
        out.textContent = fmtKnob(k, Number(input.value));
        paintRange(input);
      });
      input.addEventListener("change", () => {
        v.dragging = false;
        setKnob(v, Number(input.value));
      });
      knobs.set(k.name, v);
      paintRange(input);
    });
  }

  function paintRange(input) {
    const lo = Number(input.min), hi = Number(input.max);
    const pos = hi > lo ? ((Number(input.value) - lo) / (hi - lo)) * 100 : 0;
    input.style.setProperty("--pos", pos.toFixed(1) + "%");
  }

  async function setKnob(v, value) {
    v.busy = true;
    v.row.dataset.busy = "true";
    const err = $("knob-error");
    try {
      const res = await fetch("knobs", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name: v.k.name, value }),
      });
      if (!res.ok) throw new Error((await res.text()).trim() || res.statusText);
      const k = await res.json();
      v.out.textContent = fmtKnob(v.k, k.value);
      v.row.dataset.value = String(k.value);
      err.hidden = true;
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
    } finally {
      v.busy = false;
      v.row.dataset.busy = "false";
    }
  }

  // ---- the stream -----------------------------------------------------------

  const status = $("status");
  function setStatus(state, text) {
    if (status.dataset.state === state) return;
    status.dataset.state = state;
    $("status-text").textContent = text;
  }

  function connect() {
    const es = new EventSource("events");
    es.onmessage = (e) => {
      try {
        onFrame(JSON.parse(e.data));
      } catch (err) {
        console.error("dashboard: bad frame", err);
      }
    };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        setStatus("offline", "offline");
        setTimeout(connect, 2000);
      } else {
        setStatus("connecting", "reconnecting");
      }
    };
  }

  connect();
  requestAnimationFrame(animate);
})();
