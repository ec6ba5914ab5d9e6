// Reads a JSON array of cases on stdin and prints, for each, what the
// independent verifier @phala/dcap-qvl says. Used by attest/dcap's
// differential test; not part of the product.
//
// case:   {quote: hex, root: hex DER, now: seconds, collateral: {
//           tcb_info, tcb_info_signature (hex), tcb_info_issuer_chain,
//           qe_identity, qe_identity_signature (hex), qe_identity_issuer_chain,
//           pck_crl (hex DER or ""), root_ca_crl (hex DER or "")}}
// result: {ok: bool, status, advisory_ids, error}
'use strict';
const { QuoteVerifier } = require('@phala/dcap-qvl');

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const cases = JSON.parse(input);
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
