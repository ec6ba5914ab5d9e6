// Reads a JSON array of cases on stdin and prints, for each, what the
// independent verifier @phala/dcap-qvl says. Used by attest/dcap's
// differential test; not part of the product.
//
// input:  an array of cases, or {bases: [case…], cases: [{base: index,
//         quote?: hex, flip?: [byte offset, xor mask],
//         collateral?: {members that differ}}…]}
// case:   {quote: hex, root: hex DER, now: seconds, collateral: {
//           tcb_info, tcb_info_signature (hex), tcb_info_issuer_chain,
//           qe_identity, qe_identity_signature (hex), qe_identity_issuer_chain,
//           pck_crl (hex DER or ""), root_ca_crl (hex DER or "")}}
// result: {ok: bool, status, advisory_ids, error}
'use strict';
// The byte walk of attest/dcap feeds dcap-qvl the same certificates,
// keys and signed documents tens of thousands of times. Three pure
// functions of their inputs are memoized here, which changes no verdict:
// parsing a certificate (Node's X509Certificate is immutable, so one
// object per distinct input is handed out again), a certificate's public
// key (one KeyObject per certificate object, and its PEM export), and
// signature checks (keyed by the key, the signed bytes and the signature).
const nodeCrypto = require('crypto');
const OrigX509 = nodeCrypto.X509Certificate;
const x509Cache = new Map();
function CachedX509(input) {
  const k = Buffer.isBuffer(input) ? 'b' + input.toString('base64') : 's' + String(input);
  let c = x509Cache.get(k);
  if (!c) {
    c = new OrigX509(input);
    if (x509Cache.size > 4096) x509Cache.clear();
    x509Cache.set(k, c);
  }
  return c;
}
CachedX509.prototype = OrigX509.prototype;
nodeCrypto.X509Certificate = CachedX509;

const pubKeyGetter = Object.getOwnPropertyDescriptor(OrigX509.prototype, 'publicKey').get;
const pubKeys = new WeakMap();
Object.defineProperty(OrigX509.prototype, 'publicKey', {
  get() {
    let k = pubKeys.get(this);
    if (!k) { k = pubKeyGetter.call(this); pubKeys.set(this, k); }
    return k;
  },
});

// dcap-qvl's wrapper exports every key object to PEM before verifying.
const KeyObject = nodeCrypto.KeyObject;
const origExport = KeyObject.prototype.export;
const pemExports = new WeakMap();
KeyObject.prototype.export = function (opts) {
  if (!opts || opts.format !== 'pem' || opts.type !== 'spki') return origExport.call(this, opts);
  let p = pemExports.get(this);
  if (p === undefined) { p = origExport.call(this, opts); pemExports.set(this, p); }
  return p;
};

// results: key object -> Map(string -> boolean); keys given as PEM
// strings (dcap-qvl's wrapper exports them) share one map.
const verified = new WeakMap();
const verifiedByPEM = new Map();
function remember(key, id, f) {
  let m;
  if (typeof key === 'string') {
    m = verifiedByPEM;
    id = key + id;
    if (m.size > 200000) m.clear();
  } else if (typeof key === 'object' && key !== null) {
    m = verified.get(key);
    if (!m) { m = new Map(); verified.set(key, m); }
  } else {
    return f();
  }
  if (m.has(id)) return m.get(id);
  const r = f();
  m.set(id, r);
  return r;
}
const origCertVerify = OrigX509.prototype.verify;
OrigX509.prototype.verify = function (key) {
  return remember(key, 'cert:' + this.raw.toString('base64'), () => origCertVerify.call(this, key));
};
const origCreateVerify = nodeCrypto.createVerify;
nodeCrypto.createVerify = function (alg, opts) {
  const chunks = [];
  return {
    update(d, enc) { chunks.push(Buffer.from(d, enc)); return this; },
    verify(key, sig, sigEnc) {
      const data = Buffer.concat(chunks);
      const sigBuf = Buffer.from(sig, sigEnc);
      const id = alg + ':' + nodeCrypto.createHash('sha256').update(data).digest('base64') + ':' + sigBuf.toString('base64');
      return remember(key, id, () => origCreateVerify(alg, opts).update(data).verify(key, sigBuf));
    },
  };
};
const { QuoteVerifier } = require('@phala/dcap-qvl');

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const req = JSON.parse(input);
  // Either an array of whole cases, or {bases: [case…], cases: [{base,
  // quote?, collateral?}…]} where a case gives only what differs from its
  // base (the byte walk sends tens of thousands of cases).
  let cases = req;
  if (!Array.isArray(req)) {
    cases = req.cases.map((c) => {
      const b = req.bases[c.base];
      let quote = c.quote !== undefined ? c.quote : b.quote;
      if (c.flip) {
        const q = Buffer.from(b.quote, 'hex');
        q[c.flip[0]] ^= c.flip[1];
        quote = q.toString('hex');
      }
      return {
        quote,
        root: b.root,
        now: b.now,
        collateral: Object.assign({}, b.collateral, c.collateral || {}),
      };
    });
  }
  const out = cases.map((c) => {
    try {
      const v = QuoteVerifier.newWithRootCa(Buffer.from(c.root, 'hex'));
      const r = v.verify(Buffer.from(c.quote, 'hex'), c.collateral, c.now);
      return { ok: true, status: r.status, advisory_ids: r.advisory_ids };
    } catch (e) {
      return { ok: false, error: String(e && e.message) };
    }
  });
  process.stdout.write(JSON.stringify(out));
});
