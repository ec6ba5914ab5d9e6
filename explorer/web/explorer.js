// The quote explorer page: sends the form to /api/analyze and lays out
// the result.
"use strict";

let lastVerdictJSON = "";
let activeTab = "paste";

const locationLabels = {
  dir: ["Directory", "/path/to/collateral"],
  pccs: ["PCCS URL", "https://pccs.example:8081/sgx/certification/v4/"],
  pcs: ["(not used: Intel PCS is at a fixed address)", ""],
  sim: ["Simulated platform directory", "/path/to/simdir"],
};

function setTab(name) {
  activeTab = name;
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.dataset.tab === name);
  for (const p of document.querySelectorAll(".tabpane")) p.hidden = p.dataset.pane !== name;
}

function updateSource() {
  const [label, ph] = locationLabels[$("source").value];
  $("location-label").textContent = label;
  $("location").placeholder = ph;
  $("location").disabled = $("source").value === "pcs";
}

function advisoryLink(id) {
  // Intel publishes each advisory at a predictable address; the link is
  // only followed if the user clicks it.
  const m = /^INTEL-SA-(\d+)$/i.exec(id);
  if (!m) return el("span", { class: "advisory", text: id });
  return el("a", { class: "advisory", href: "https://www.intel.com/content/www/us/en/security-center/advisory/intel-sa-" + m[1] + ".html", target: "_blank", rel: "noopener noreferrer", text: id });
}

function advisoryList(ids) {
  const span = el("span", { class: "advisory-list" });
  if (!ids || ids.length === 0) { span.append(el("span", { class: "muted", text: "none" })); return span; }
  ids.forEach((id, i) => { if (i) span.append(" "); span.append(advisoryLink(id)); });
  return span;
}

function fact(dl, name, value, cls) {
  dl.append(el("dt", { text: name }), el("dd", cls ? { class: cls } : {}, value));
}

function statusClass(status) {
  if (!status) return "";
  if (status === "UpToDate") return "ok";
  if (status === "SWHardeningNeeded") return "warn";
  if (status === "Revoked") return "bad";
  return "bad";
}

function render(r) {
  $("placeholder").hidden = true;
  $("error").hidden = true;
  $("report").hidden = false;
  $("sim-banner").hidden = !r.simulated;
  document.body.classList.toggle("simulated", !!r.simulated);

  const v = r.verdict;
  const badge = $("verdict-status");
  let text, cls;
  if (!v.genuine) { text = "NOT GENUINE"; cls = "bad"; }
  else if (!v.acceptable) { text = "GENUINE · REFUSED BY POLICY"; cls = "warn"; }
  else { text = "GENUINE · ACCEPTABLE"; cls = "ok"; }
  badge.textContent = text;
  badge.className = "badge " + cls;
  $("verdict").className = "verdict " + cls;
  $("verdict-line").textContent = v.error ? v.error : "every step passed and the policy accepts this enclave";

  const rep = v.genuine ? v : null;
  const q = r.fields ? Object.fromEntries(r.fields.filter(f => f.section === "ISV enclave report").map(f => [f.name, f])) : {};
  $("mrenclave").textContent = rep ? rep.mrenclave : (q.MRENCLAVE ? q.MRENCLAVE.hex + "  (unverified)" : "—");
  $("mrsigner").textContent = rep ? rep.mrsigner : (q.MRSIGNER ? q.MRSIGNER.hex + "  (unverified)" : "—");
  $("isv").textContent = rep ? rep.isvprodid + " / " + rep.isvsvn : (q.ISVPRODID ? q.ISVPRODID.value + " / " + q.ISVSVN.value + "  (unverified)" : "—");
  const ts = $("tcb-status");
  ts.textContent = rep ? rep.tcb_status : "—";
  ts.className = "badge small " + (rep ? statusClass(rep.tcb_status) : "");
  $("tcb-detail").textContent = rep ? "platform " + rep.platform_status + ", QE " + rep.qe_status + "; collateral current until " + rep.collateral_expiry : "";
  clear($("advisories"));
  $("advisories").append(rep ? advisoryList(rep.advisory_ids) : "—");
  $("debug").textContent = rep ? (rep.debug ? "YES — its host can read its memory" : "no") : "—";
  $("root-subject").textContent = rep ? rep.root_subject : "—";
  $("input-kind").textContent = r.input + (r.quote_size ? ", quote of " + r.quote_size + " bytes" : "");
  const hint = $("hint");
  hint.hidden = !v.hint;
  hint.textContent = v.hint ? "What to do: " + v.hint : "";

  // Live server and certificate.
  const lb = $("live-box"), ld = $("live");
  clear(ld);
  lb.hidden = !r.live;
  if (r.live) {
    fact(ld, "address", r.live.address + " (" + r.live.kind + ", " + r.live.tls_version + ")");
    const b = r.live.kind === "kmsd" ? (r.certificate && r.certificate.binding) : r.live.binding;
    fact(ld, "binding", (b ? "holds: " : "DOES NOT HOLD: ") + r.live.binding_note, b ? "ok-text" : "bad-text");
  }
  const cb = $("cert-box"), cd = $("cert");
  clear(cd);
  cb.hidden = !r.certificate;
  if (r.certificate) {
    const c = r.certificate;
    fact(cd, "subject", c.subject);
    fact(cd, "key", c.public_key);
    fact(cd, "formats", c.formats.join(", ") || "none");
    fact(cd, "used", c.used || "—");
    fact(cd, "key binding", c.error ? c.error : (c.binding ? "the quote's report data binds this certificate's key" : "the quote's report data does NOT bind this certificate's key"), c.binding ? "ok-text" : "bad-text");
  }

  // Steps.
  const ol = $("steps");
  clear(ol);
  for (const s of r.steps) {
    const mark = s.result === "passed" ? "✓" : s.result === "failed" ? "✗" : "·";
    ol.append(el("li", { class: "step " + s.result.replace(" ", "-"), "data-step": s.id },
      el("span", { class: "mark", text: mark }),
      el("span", { class: "title", text: s.title }),
      el("span", { class: "result", text: s.result }),
      el("div", { class: "reason", text: s.reason })));
  }

  // TCB levels.
  const tb = $("tcb-box"), tbody = $("tcb-table").tBodies[0];
  clear(tbody);
  tb.hidden = !r.tcb;
  if (r.tcb) {
    const t = r.tcb;
    $("tcb-meta").textContent = t.error && !t.levels ? t.error :
      "FMSPC " + t.fmspc + " · evaluation data " + t.tcb_evaluation_data_number + " · issued " + t.issue_date + " · next update " + t.next_update +
      (t.verified ? " · signature verified" : " · NOT verified (the TCB info step did not pass)");
    (t.levels || []).forEach((l, i) => {
      const row = el("tr", { class: i === t.matched ? "matched" : "" },
        el("td", { class: "nowrap", text: String(i) + (i === t.matched ? " ▶" : ""), title: i === t.matched ? "this platform's level" : "" }),
        el("td", {}, el("span", { class: "badge small " + statusClass(l.status), text: l.status })),
        el("td", { class: "nowrap", text: l.tcb_date.replace("T00:00:00Z", "") }),
        el("td", { text: String(l.pcesvn) }),
        el("td", { class: "mono svns", text: l.comp_svn.join(" ") }),
        el("td", {}, advisoryList(l.advisory_ids)));
      tbody.append(row);
    });
    if (t.matched < 0 && t.error) tbody.append(el("tr", {}, el("td", { colspan: "6", class: "bad-text", text: t.error })));
  }

  // PCK certificate.
  const pb = $("pck-box"), pd = $("pck");
  clear(pd);
  pb.hidden = !r.pck_extensions;
  if (r.pck_extensions) {
    const p = r.pck_extensions;
    if (p.error) fact(pd, "error", p.error, "bad-text");
    else {
      fact(pd, "FMSPC", p.fmspc, "mono");
      fact(pd, "PCE-ID", p.pceid, "mono");
      fact(pd, "PCESVN", String(p.pcesvn));
      fact(pd, "component SVNs", p.comp_svn.join(" "), "mono");
      fact(pd, "CPUSVN", p.cpusvn, "mono");
      fact(pd, "SGX type", p.sgx_type);
      fact(pd, "PPID", p.ppid, "mono");
      if (p.platform_instance_id) fact(pd, "platform instance id", p.platform_instance_id, "mono");
    }
  }
  const chain = $("chain").tBodies[0];
  clear(chain);
  for (const c of r.pck_chain || []) {
    chain.append(el("tr", {}, el("td", { text: c.subject }), el("td", { text: c.issuer }), el("td", { text: c.not_before }), el("td", { text: c.not_after })));
  }

  // Policy.
  const pol = r.steps.find(s => s.id === "policy");
  const pr = $("policy-result");
  pr.textContent = pol.result;
  pr.className = "badge " + (pol.result === "passed" ? "ok" : pol.result === "failed" ? "bad" : "");
  $("policy-source").textContent = r.policy_source;
  $("policy-reason").textContent = pol.reason + (v.policy_rule ? " (rule: " + v.policy_rule + ")" : "");
  $("make-policy").disabled = !r.policy_lines;
  $("make-policy").dataset.lines = r.policy_lines || "";
  $("policy-lines").hidden = true;

  // Quote layout.
  const fb = $("fields-box"), fbody = $("fields").tBodies[0];
  clear(fbody);
  fb.hidden = !r.fields;
  $("quote-size").textContent = r.quote_size + " bytes";
  let section = "";
  for (const f of r.fields || []) {
    fbody.append(el("tr", { class: f.section !== section ? "section-start" : "" },
      el("td", { class: "mono", text: f.offset + " (0x" + f.offset.toString(16) + ")" }),
      el("td", { text: String(f.size) }),
      el("td", { text: f.section }),
      el("td", { text: f.name, title: f.note || "" }),
      el("td", { text: f.value || "" }),
      el("td", { class: "mono hex", text: f.hex })));
    section = f.section;
  }
  if (r.parse_error) {
    fb.hidden = false;
    fbody.append(el("tr", {}, el("td", { colspan: "6", class: "bad-text", text: "The quote does not parse, so its fields cannot be laid out: " + r.parse_error })));
  }

  lastVerdictJSON = r.verdict_json;
  $("verdict-json").textContent = r.verdict_json;
}

async function submit(ev) {
  ev.preventDefault();
  const form = $("form");
  const fd = new FormData();
  if (activeTab === "paste") fd.append("quote_text", $("quote_text").value);
  if (activeTab === "upload" && $("quote_file").files[0]) fd.append("quote_file", $("quote_file").files[0]);
  if (activeTab === "live") { fd.append("address", $("address").value); fd.append("kind", $("kind").value); }
  for (const k of ["source", "location", "root", "at", "policy_text"]) fd.append(k, form.elements[k].value);
  if ($("policy_file").files[0]) fd.append("policy_file", $("policy_file").files[0]);
  const btn = $("verify");
  btn.disabled = true;
  btn.textContent = "Verifying…";
  const res = await api("/api/analyze", { method: "POST", body: fd });
  btn.disabled = false;
  btn.textContent = "Verify";
  if (!res.ok) {
    $("report").hidden = true;
    $("placeholder").hidden = true;
    $("sim-banner").hidden = true;
    showError($("error"), res.body);
    return;
  }
  render(res.body);
}

function download() {
  const blob = new Blob([lastVerdictJSON], { type: "application/json" });
  const a = el("a", { href: URL.createObjectURL(blob), download: "verdict.json" });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => setTab(t.dataset.tab));
  $("source").addEventListener("change", updateSource);
  $("form").addEventListener("submit", submit);
  $("download").addEventListener("click", download);
  $("make-policy").addEventListener("click", () => {
    const pre = $("policy-lines");
    pre.textContent = $("make-policy").dataset.lines;
    pre.hidden = false;
  });
  const drop = $("drop");
  drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", e => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) {
      $("quote_file").files = e.dataTransfer.files;
      drop.textContent = "dropped: " + e.dataTransfer.files[0].name;
    }
  });
  updateSource();
});
