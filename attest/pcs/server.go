package pcs

import (
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// Handler serves a collateral directory over HTTP at the PCS v4 paths
// (tcb, qe/identity, pckcrl, rootcacrl under /sgx/certification/v4/),
// with the issuer chains in PCS's headers. The simulated platform uses it
// to stand in for Intel PCS; tests use it to exercise Client.
func Handler(dir string) http.Handler {
	const prefix = "/sgx/certification/v4/"
	read := func(w http.ResponseWriter, name string) []byte {
		b, err := readLimited(filepath.Join(dir, name))
		if err != nil {
			if os.IsNotExist(err) {
				http.Error(w, "not found", http.StatusNotFound)
			} else {
				http.Error(w, "collateral unavailable", http.StatusInternalServerError)
			}
			return nil
		}
		return b
	}
	serve := func(w http.ResponseWriter, body, chain []byte, header, ctype string) {
		if chain != nil {
			w.Header().Set(header, EscapeChain(chain))
		}
		w.Header().Set("Content-Type", ctype)
		w.Write(body)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		path, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		switch path {
		case "tcb":
			body := read(w, FileTCBInfo)
			if body == nil {
				return
			}
			fmspc, err := hex.DecodeString(r.URL.Query().Get("fmspc"))
			ti, perr := parseFMSPC(body)
			if err != nil || len(fmspc) != 6 || perr != nil || !strings.EqualFold(ti, hex.EncodeToString(fmspc)) {
				http.Error(w, "no TCB info for that FMSPC", http.StatusNotFound)
				return
			}
			if chain := read(w, FileTCBInfoIssuerChain); chain != nil {
				serve(w, body, chain, HeaderTCBInfoIssuerChain, "application/json")
			}
		case "qe/identity":
			body := read(w, FileQEIdentity)
			if body == nil {
				return
			}
			if chain := read(w, FileQEIdentityIssuerChain); chain != nil {
				serve(w, body, chain, HeaderQEIdentityIssuerChain, "application/json")
			}
		case "pckcrl":
			if ca := r.URL.Query().Get("ca"); ca != "processor" && ca != "platform" {
				http.Error(w, "ca must be processor or platform", http.StatusBadRequest)
				return
			}
			body := read(w, FilePCKCRL)
			if body == nil {
				return
			}
			if chain := read(w, FilePCKCRLIssuerChain); chain != nil {
				serve(w, body, chain, HeaderPCKCRLIssuerChain, "application/pkix-crl")
			}
		case "rootcacrl":
			if body := read(w, FileRootCACRL); body != nil {
				serve(w, body, nil, "", "application/pkix-crl")
			}
		default:
			http.NotFound(w, r)
		}
	})
}
