// The owner dashboard: signs in against the API, lists the caller's resources, and shows a
// year by day or month (chart and table) from /dashboard, /dashboard?series=cancelled and
// /dashboard/summary, plus the resource's latest bookings. Every figure comes from the API.
// For automation, `#email=..&password=..&resource=..&year=..&period=..` signs in and loads.
"use strict";
(function () {
  const api = "/api/v1";
  let token = sessionStorage.getItem("token");
  let chart = null;
  const $ = (id) => document.getElementById(id);

  async function call(path) {
    const res = await fetch(api + path, { headers: { authorization: "Bearer " + token } });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.detail || res.statusText);
    return body;
  }

  async function login(email, password) {
    const res = await fetch(api + "/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.detail || "sign-in failed");
    token = body.access_token;
    sessionStorage.setItem("token", token);
    $("who").textContent = body.user ? (body.user.email || "") + " (" + (body.user.role || "") + ")" : "";
  }

  async function resources() {
    const page = await call("/resources?mine=true&limit=100");
    const sel = $("resource");
    sel.replaceChildren();
    for (const r of page.items) {
      const o = document.createElement("option");
      o.value = r.id;
      o.textContent = r.name + " (" + r.kind + ")";
      sel.append(o);
    }
    $("login").hidden = true;
    $("board").hidden = false;
    document.body.dataset.state = "picking";
  }

  const money = (minor, cur) => (minor / 100).toFixed(2) + " " + cur;

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.append(td);
  }

  async function show() {
    const id = $("resource").value;
    const year = $("year").value;
    const period = document.querySelector("input[name=period]:checked").value;
    const q = "?year=" + encodeURIComponent(year) + "&period=" + period;
    $("error").textContent = "";
    document.body.dataset.state = "loading";
    try {
      const [booked, cancelled, summary, recent] = await Promise.all([
        call("/resources/" + id + "/dashboard" + q),
        call("/resources/" + id + "/dashboard" + q + "&series=cancelled"),
        call("/resources/" + id + "/dashboard/summary" + q),
        call("/resources/" + id + "/bookings?limit=10"),
      ]);
      const dates = Object.keys(booked).sort();
      const rows = $("figures").tBodies[0];
      rows.replaceChildren();
      summary.points.forEach((p) => {
        const tr = document.createElement("tr");
        tr.dataset.date = p.date;
        cell(tr, p.date, "date");
        cell(tr, String(booked[p.date] ?? 0), "booked");
        cell(tr, String(cancelled[p.date] ?? 0), "cancelled");
        cell(tr, money(p.revenue_minor, summary.currency), "revenue");
        cell(tr, p.used_pct.toFixed(2) + " %", "used");
        rows.append(tr);
      });
      const t = summary.totals;
      $("totals").textContent = "Total " + t.booked + " " + summary.unit.replace("_", "-") + " booked, " + t.cancelled +
        " cancelled, " + money(t.revenue_minor, summary.currency) + ", " + t.used_pct.toFixed(2) + " % of capacity.";
      $("totals").dataset.booked = t.booked;
      const data = {
        labels: dates,
        datasets: [
          { label: "Booked", data: dates.map((d) => booked[d]), backgroundColor: "#2f6fb0" },
          { label: "Cancelled", data: dates.map((d) => cancelled[d]), backgroundColor: "#d0703c" },
        ],
      };
      if (chart) chart.destroy();
      if (window.Chart) {
        chart = new window.Chart($("chart"), {
          type: "bar", data,
          options: { animation: false, maintainAspectRatio: false, scales: { x: { stacked: false } } },
        });
      }
      const list = $("recent").tBodies[0];
      list.replaceChildren();
      for (const b of recent.items) {
        const tr = document.createElement("tr");
        cell(tr, b.created_at.slice(0, 19).replace("T", " "));
        cell(tr, b.status);
        const it = b.item;
        cell(tr, it.kind === "stay" ? it.check_in + " → " + it.check_out : it.kind === "tickets" ? it.quantity + " tickets" : it.starts_at);
        cell(tr, money(b.amount.amount_minor, b.amount.currency));
        list.append(tr);
      }
      document.body.dataset.state = "ready";
    } catch (e) {
      $("error").textContent = e.message;
      document.body.dataset.state = "error";
    }
  }

  $("year").value = new Date().getFullYear();
  $("login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await login($("email").value, $("password").value);
      await resources();
    } catch (e) {
      $("login-error").textContent = e.message;
    }
  });
  $("pick").addEventListener("submit", (ev) => {
    ev.preventDefault();
    show();
  });

  (async function start() {
    const f = new URLSearchParams(location.hash.slice(1));
    try {
      if (f.get("email")) await login(f.get("email"), f.get("password") || "");
      if (token) await resources();
      if (f.get("year")) $("year").value = f.get("year");
      if (f.get("period")) document.querySelector("input[name=period][value=" + f.get("period") + "]").checked = true;
      if (f.get("resource")) {
        $("resource").value = f.get("resource");
        await show();
      }
    } catch (e) {
      token = null;
      sessionStorage.removeItem("token");
      $("login-error").textContent = e.message;
    }
  })();
})();
