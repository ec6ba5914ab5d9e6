package kms

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// The sys/ endpoints that Vault's CLI and clients call before anything
// else: vault status (sys/seal-status, sys/leader), vault secrets list
// (sys/mounts), the CLI's mount lookup (sys/internal/ui/mounts/:path),
// vault token capabilities (sys/capabilities-self).

// apiVersion is the Vault API version kmsd follows, reported where Vault
// reports its version (semver, so that clients can parse it).
const apiVersion = "1.21.0+shared-enclave-kms"

// sysStatus answers sys/seal-status and sys/leader: kmsd is always
// initialized and unsealed (its keys are sealed to the enclave, which
// unseals them at start) and not highly available.
func (s *Service) sysStatus(path string) (response, error) {
	if path == "sys/leader" {
		return response{raw: map[string]any{"ha_enabled": false, "is_self": false, "active_time": "0001-01-01T00:00:00Z",
			"leader_address": "", "leader_cluster_address": "", "performance_standby": false,
			"performance_standby_last_remote_wal": 0}}, nil
	}
	return response{raw: map[string]any{"type": "enclave", "initialized": true, "sealed": false, "t": 0, "n": 0,
		"progress": 0, "nonce": "", "version": apiVersion, "build_date": "", "migration": false, "recovery_seal": false,
		"storage_type": "enclave-sealed", "cluster_name": "", "cluster_id": ""}}, nil
}

// mountInfo is a mount as sys/mounts shows it.
func mountInfo(typ, desc string) map[string]any {
	return map[string]any{"type": typ, "description": desc, "accessor": typ + "_kmsd", "uuid": "",
		"config": map[string]any{"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false},
		"local":  false, "seal_wrap": false, "external_entropy_access": false, "options": nil,
		"plugin_version": "", "running_plugin_version": "", "running_sha256": "", "deprecation_status": ""}
}

var (
	transitMount = mountInfo("transit", "transit keys held in the enclave")
	sysMount     = mountInfo("system", "system endpoints")
)

// mounts answers GET sys/mounts and sys/internal/ui/mounts/:path. kmsd
// has two fixed mounts, transit/ and sys/; they cannot be changed.
func (s *Service) mounts(req *request) (response, error) {
	if req.method != "GET" {
		return response{}, &Error{Status: http.StatusMethodNotAllowed, Msg: "kmsd's mounts are fixed: transit/ and sys/"}
	}
	if req.path == "sys/mounts" {
		return response{data: map[string]any{"transit/": transitMount, "sys/": sysMount}}, nil
	}
	p := strings.TrimPrefix(strings.TrimPrefix(req.path, "sys/internal/ui/mounts"), "/")
	var m map[string]any
	var mount string
	switch {
	case p == "transit" || strings.HasPrefix(p, "transit/"):
		m, mount = transitMount, "transit/"
	case p == "sys" || strings.HasPrefix(p, "sys/"):
		m, mount = sysMount, "sys/"
	default:
		return response{}, badRequest(fmt.Sprintf("no mount serves %q: kmsd has transit/ and sys/", p))
	}
	out := map[string]any{"path": mount}
	for k, v := range m {
		out[k] = v
	}
	return response{data: out}, nil
}

// capabilitiesSelf answers POST sys/capabilities-self {"paths": [...]}
// (or "path"): the caller's capabilities on each path.
func (s *Service) capabilitiesSelf(req *request) (response, error) {
	if req.method != "POST" && req.method != "PUT" {
		return response{}, &Error{Status: http.StatusMethodNotAllowed, Msg: "use POST"}
	}
	policies := req.tok.Policies
	switch req.path {
	case "sys/capabilities-self":
		if err := checkFields(req.body, []string{"paths", "path", "token"}, nil, ""); err != nil {
			return response{}, err
		}
		// Vault's client sends the caller's own token along; another
		// token belongs at sys/capabilities.
		if tok, err := req.str("token"); err != nil {
			return response{}, err
		} else if tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(req.tokRaw)) != 1 {
			return response{}, badRequest("field \"token\": sys/capabilities-self answers for the caller's own token; use sys/capabilities for another")
		}
	case "sys/capabilities":
		if err := checkFields(req.body, []string{"paths", "path", "token"}, nil, ""); err != nil {
			return response{}, err
		}
		tok, err := req.str("token")
		if err != nil {
			return response{}, err
		}
		t := s.lookupToken(tok)
		if t == nil {
			return response{}, badRequest("field \"token\": invalid token")
		}
		policies = t.Policies
	case "sys/capabilities-accessor":
		h, err := s.accessorField(req, fields{known: []string{"paths", "path", "accessor"}})
		if err != nil {
			return response{}, err
		}
		s.mu.RLock()
		t := s.tokens[h]
		s.mu.RUnlock()
		if t == nil {
			return response{}, badRequest("invalid accessor")
		}
		policies = t.Policies
	}
	var paths []string
	for _, f := range []string{"paths", "path"} {
		raw, ok := req.body[f]
		if !ok || string(raw) == "null" {
			continue
		}
		var list []string
		if err := jsonUnmarshal(raw, &list); err != nil {
			var one string
			if jsonUnmarshal(raw, &one) != nil {
				return response{}, badRequest(fmt.Sprintf("field %q must be a list of paths", f))
			}
			list = strings.Split(one, ",")
		}
		paths = append(paths, list...)
	}
	if len(paths) == 0 {
		return response{}, badRequest("missing field \"paths\"")
	}
	data := map[string]any{}
	var last []string
	for _, p := range paths {
		p = strings.TrimPrefix(strings.TrimSpace(p), "/")
		last = s.capabilities(policies, p)
		data[p] = last
	}
	if len(paths) == 1 {
		data["capabilities"] = last
	}
	return response{data: data}, nil
}

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }

// snapshot serves Vault's sys/storage/raft/snapshot. GET (`vault operator
// raft snapshot save FILE`) needs sudo on the path, as in Vault, and
// streams a backup of the store (Config.Snapshot). A restore into the
// running service (POST, or snapshot-force) is refused: a restore
// replaces every key and token, so it is done on a stopped kmsd, into a
// new data dir, where nothing half-restored can be served.
func (s *Service) snapshot(req *request) (func() (response, error), error) {
	if req.method != "GET" && req.method != "POST" && req.method != "PUT" {
		return nil, &Error{Status: http.StatusMethodNotAllowed, Msg: "unsupported operation"}
	}
	if req.method != "GET" || req.path != "sys/storage/raft/snapshot" {
		if req.method == "GET" {
			return nil, &Error{Status: http.StatusMethodNotAllowed, Msg: "unsupported operation: snapshot-force is a restore (POST)"}
		}
		return nil, badRequest("restoring a snapshot into a running kmsd is not supported: stop kmsd, unpack the snapshot into a new data dir " +
			"with `enclavectl backup restore SNAPSHOT --data-dir DIR` and start kmsd on that dir (docs/DEPLOY.md, \"Backups\")")
	}
	if !s.allowed(req.tok.Policies, req.path, capSudo) {
		return nil, forbidden()
	}
	if s.cfg.Snapshot == nil {
		msg := s.cfg.SnapshotRefusal
		if msg == "" {
			msg = "this kmsd keeps no data dir (memory-only): there is nothing to snapshot"
		}
		return nil, badRequest(msg)
	}
	return func() (response, error) {
		write, err := s.cfg.Snapshot()
		if err != nil {
			s.log.Error("taking a snapshot failed", "err", err)
			return response{}, &Error{Status: http.StatusInternalServerError, Msg: "taking the snapshot failed (the server log says why); nothing was sent"}
		}
		return response{stream: write}, nil
	}, nil
}
