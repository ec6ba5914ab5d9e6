package kms

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl"
)

// Capabilities, as Vault names them.
const (
	capCreate = "create"
	capRead   = "read"
	capUpdate = "update"
	capDelete = "delete"
	capList   = "list"
	capDeny   = "deny"
	capSudo   = "sudo"
)

// aclPolicy is a named set of path rules written in Vault's policy
// language (HCL):
//
//	path "transit/encrypt/app" { capabilities = ["update"] }
//	path "transit/keys/*"      { capabilities = ["read", "list"] }
//
// A path ending in * matches by prefix; a + matches one segment. The most
// specific matching rule wins (exact over glob, longer over shorter);
// "deny" wins over everything.
type aclPolicy struct {
	Name  string `json:"name"`
	Rules string `json:"rules"`
	paths []pathRule
}

type pathRule struct {
	pattern string
	caps    []string
}

func (p *aclPolicy) compile() error {
	var doc struct {
		Path map[string]struct {
			Capabilities []string `hcl:"capabilities"`
		} `hcl:"path"`
	}
	if err := hcl.Decode(&doc, p.Rules); err != nil {
		return badRequest(fmt.Sprintf("failed to parse policy: %v", err))
	}
	p.paths = nil
	for pat, r := range doc.Path {
		for _, c := range r.Capabilities {
			switch c {
			case capCreate, capRead, capUpdate, capDelete, capList, capDeny, capSudo, "patch":
			default:
				return badRequest(fmt.Sprintf("policy path %q: unknown capability %q", pat, c))
			}
		}
		p.paths = append(p.paths, pathRule{pattern: strings.TrimPrefix(pat, "/"), caps: r.Capabilities})
	}
	return nil
}

// match reports whether pattern matches path, and how specific it is.
func match(pattern, path string) (bool, int) {
	glob := strings.HasSuffix(pattern, "*")
	pat := strings.TrimSuffix(pattern, "*")
	ps, xs := strings.Split(pat, "/"), strings.Split(path, "/")
	if !glob && len(ps) != len(xs) {
		return false, 0
	}
	if glob && len(xs) < len(ps) {
		return false, 0
	}
	for i, seg := range ps {
		last := i == len(ps)-1
		switch {
		case seg == "+":
		case glob && last:
			if !strings.HasPrefix(xs[i], seg) {
				return false, 0
			}
		case seg != xs[i]:
			return false, 0
		}
	}
	score := len(pattern) * 2
	if !glob {
		score += 1 << 20
	}
	return true, score
}

// allowed decides whether policies grant capability on path.
func (s *Service) allowed(policies []string, path, capability string) bool {
	caps := s.capabilities(policies, path)
	return slices.Contains(caps, "root") || slices.Contains(caps, capability)
}

// capabilities lists what policies grant on path, as Vault's
// sys/capabilities-self reports it: ["root"] for a root token,
// ["deny"] when nothing (or a deny) applies.
func (s *Service) capabilities(policies []string, path string) []string {
	best, bestScore, denied := []string(nil), -1, false
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, name := range policies {
		if name == "root" {
			return []string{"root"}
		}
		p := s.policyLocked(name)
		if p == nil {
			continue
		}
		for _, r := range p.paths {
			ok, score := match(r.pattern, path)
			if !ok {
				continue
			}
			if slices.Contains(r.caps, capDeny) {
				denied = true
			}
			if score > bestScore {
				best, bestScore = r.caps, score
			} else if score == bestScore {
				best = append(slices.Clone(best), r.caps...)
			}
		}
	}
	if denied || len(best) == 0 {
		return []string{capDeny}
	}
	best = slices.Clone(best)
	slices.Sort(best)
	return slices.Compact(best)
}
