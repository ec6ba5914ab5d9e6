// Package explorer is the local web application behind `enclavectl
// explore`: an attestation explorer and a status page for relayd and kmsd.
//
// # What it shows
//
// The explorer takes a quote (binary, hex or base64), an RA-TLS
// certificate (PEM or DER; Gramine legacy, Gramine standard or EGo), or the
// address of a running kmsd or relayd, and checks it with a
// dcap.Verifier built the way `enclavectl quote verify` builds one from
// its flags (collateral directory, PCCS URL, Intel PCS, or a simulated
// platform; a root; a verification time). The verdict is verdict.Judge's,
// the same value `enclavectl quote verify` prints — one code path — and
// around it the page lays out the quote's fields with their byte offsets,
// each dcap.Step with its result (the steps before the failed one passed,
// the ones after it did not run), the TCB levels of the very collateral
// the verifier used with the platform's level (dcap.MatchTCBLevel), the
// PCK certificate's SGX extensions (dcap.ParsePCKExtensions), the policy
// evaluation, and a [peers] table accepting exactly this enclave.
//
// The status page reads a relayd's or kmsd's Prometheus endpoint (the
// names package metrics registers) and redraws it as it changes.
//
// # Safe by construction
//
//   - Only loopback Host headers are served unless Config.AnyHost (DNS
//     rebinding), and every /api/ request must carry APIHeader, which no
//     other origin can send without a CORS preflight the explorer never
//     answers: another web page cannot make the explorer read files or
//     fetch addresses.
//   - Every response carries CSP: scripts, styles and connections from the
//     explorer only, nothing inline; the page builds its DOM with
//     textContent, never from HTML.
//   - An analysis request is bounded (Config.MaxRequestBytes) before it is
//     read; quotes go through sgxquote.Parse (64 KiB cap) inside the
//     verifier, certificates through atls.Extract, policies through
//     policyfile.Parse — the parsers every other part of the project uses.
//   - The explorer sends nothing anywhere but where the user points it: a
//     collateral source, a server address (a TLS handshake; for relayd the
//     simulated client quote its protocol requires first), a metrics
//     address. Each connection has Config.FetchTimeout.
//   - A simulated root or quote is flagged (Result.Simulated,
//     Status.Simulated) and the page shows a banner.
package explorer
