// Shared helpers. The DOM is built with createElement and textContent
// only: nothing the server or the user sent is ever parsed as HTML.
"use strict";

const API_HEADER = "X-Shared-Enclave-Explorer";

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

// api calls the explorer's JSON API and returns {ok, status, body}. A
// network failure or a body that is not JSON becomes an error message.
async function api(url, opts) {
  opts = opts || {};
  opts.headers = Object.assign({}, opts.headers || {}, { [API_HEADER]: "1" });
  let resp;
  try {
    resp = await fetch(url, opts);
  } catch (e) {
    return { ok: false, status: 0, body: { error: "the explorer did not answer (is enclavectl explore still running?): " + e.message } };
  }
  let body;
  try {
    body = await resp.json();
  } catch (e) {
    body = { error: "the explorer answered " + resp.status + " with a body that is not JSON" };
  }
  return { ok: resp.ok, status: resp.status, body: body };
}

function showError(box, body) {
  clear(box);
  box.append(el("strong", { text: "Cannot verify: " }), body.error || "unknown error");
  if (body.field) box.append(el("span", { class: "muted", text: "  (field: " + body.field + ")" }));
  box.hidden = false;
}
