package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/attest/policyfile"
)

// kmsFlags are the flags of every `enclavectl kms` command. The token is
// read from --token-file or SHARED_ENCLAVE_TOKEN, never from a flag.
type kmsFlags struct {
	addr, simDir, policy, pccs, tokenFile *string
	simulation                            *bool
}

func addKMSFlags(fs *flag.FlagSet, withPolicy bool) kmsFlags {
	empty := ""
	f := kmsFlags{
		addr:       fs.String("addr", "127.0.0.1:8443", "kmsd address HOST:PORT"),
		simulation: fs.Bool("simulation", false, "verify kmsd against the simulated platform in --sim-dir (NOT a real enclave)"),
		simDir:     fs.String("sim-dir", "", "simulated platform directory (default .sim, with --simulation)"),
		policy:     &empty,
		pccs:       fs.String("pccs", "", "PCCS or PCS v4 base URL (SGX; default Intel PCS)"),
		tokenFile:  fs.String("token-file", "", "file holding the API token (default: $SHARED_ENCLAVE_TOKEN)"),
	}
	if withPolicy {
		f.policy = fs.String("policy", "", "TOML policy: which kmsd enclaves to trust (required under SGX)")
	}
	return f
}

// client returns Vault's API client, connected over RA-TLS: the handshake
// fails unless kmsd's certificate carries a quote the policy accepts.
func (f kmsFlags) client(env func(string) string) (*vault.Client, error) {
	simDir := *f.simDir
	if *f.simulation && simDir == "" {
		simDir = ".sim"
	}
	be, err := backend.Open(backend.Options{Simulation: *f.simulation, SimDir: simDir, PCCS: *f.pccs})
	if err != nil {
		return nil, err
	}
	policy, err := policyfile.PeerPolicy(*f.policy, be.DefaultPolicy)
	if err != nil {
		return nil, err
	}
	tok := env("SHARED_ENCLAVE_TOKEN")
	if *f.tokenFile != "" {
		b, err := os.ReadFile(*f.tokenFile)
		if err != nil {
			return nil, err
		}
		tok = strings.TrimSpace(string(b))
	}
	cfg := vault.DefaultConfig()
	cfg.Address = "https://" + *f.addr
	cfg.MaxRetries = 0
	cfg.HttpClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: atls.RATLSClientConfig(be.Verifier, policy)}}
	c, err := vault.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.SetToken(tok)
	return c, nil
}

const kmsUsage = `enclavectl kms commands (all take --addr, --simulation, --sim-dir, --policy, --token-file):
  kms key create NAME [--type aes256-gcm96]
  kms key read NAME
  kms key list
  kms key rotate NAME
  kms encrypt NAME PLAINTEXT          (prints vault:vN:… ciphertext)
  kms decrypt NAME CIPHERTEXT         (prints the plaintext)
  kms policy write NAME FILE          (Vault policy language, HCL)
  kms token create --policy NAME[,NAME]
`

func kmsCmd(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, kmsUsage)
		return 2
	}
	cmd := args[0]
	args = args[1:]
	if (cmd == "key" || cmd == "policy" || cmd == "token") && len(args) > 0 {
		cmd += " " + args[0]
		args = args[1:]
	}
	fs := newFlags("kms "+cmd, "kms "+cmd+" ...", stderr)
	kf := addKMSFlags(fs, cmd != "token create")
	var typ, policies *string
	switch cmd {
	case "key create":
		typ = fs.String("type", "aes256-gcm96", "key type: aes128-gcm96, aes256-gcm96, chacha20-poly1305, ed25519, ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096, hmac")
	case "token create":
		policies = fs.String("policy", "", "policies the new token gets, comma-separated (required)")
		kf.policy = fs.String("trust-policy", "", "TOML policy: which kmsd enclaves to trust (required under SGX)")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	want := map[string]int{"key create": 1, "key read": 1, "key list": 0, "key rotate": 1, "encrypt": 2, "decrypt": 2, "policy write": 2, "token create": 0}
	n, ok := want[cmd]
	if !ok {
		fmt.Fprintf(stderr, "enclavectl: unknown command \"kms %s\"\n\n%s", cmd, kmsUsage)
		return 2
	}
	if len(pos) != n {
		return usageErr(stderr, fs, "want %d arguments, got %d", n, len(pos))
	}
	c, err := kf.client(env)
	if err != nil {
		return fail(stderr, "kms", err, "")
	}
	var out any
	switch cmd {
	case "key create":
		_, err = c.Logical().WriteWithContext(ctx, "transit/keys/"+pos[0], map[string]any{"type": *typ})
		out = "created " + pos[0]
	case "key read":
		var s *vault.Secret
		if s, err = c.Logical().ReadWithContext(ctx, "transit/keys/"+pos[0]); err == nil && s == nil {
			err = fmt.Errorf("no key named %q", pos[0])
		} else if s != nil {
			out = s.Data
		}
	case "key list":
		var s *vault.Secret
		if s, err = c.Logical().ListWithContext(ctx, "transit/keys"); err == nil && s != nil {
			out = s.Data["keys"]
		}
	case "key rotate":
		_, err = c.Logical().WriteWithContext(ctx, "transit/keys/"+pos[0]+"/rotate", nil)
		out = "rotated " + pos[0]
	case "encrypt":
		var s *vault.Secret
		if s, err = c.Logical().WriteWithContext(ctx, "transit/encrypt/"+pos[0], map[string]any{"plaintext": base64.StdEncoding.EncodeToString([]byte(pos[1]))}); err == nil {
			out = s.Data["ciphertext"]
		}
	case "decrypt":
		var s *vault.Secret
		if s, err = c.Logical().WriteWithContext(ctx, "transit/decrypt/"+pos[0], map[string]any{"ciphertext": pos[1]}); err == nil {
			var pt []byte
			if pt, err = base64.StdEncoding.DecodeString(fmt.Sprint(s.Data["plaintext"])); err == nil {
				out = string(pt)
			}
		}
	case "policy write":
		var rules []byte
		if rules, err = os.ReadFile(pos[1]); err == nil {
			err = c.Sys().PutPolicyWithContext(ctx, pos[0], string(rules))
			out = "policy " + pos[0] + " written"
		}
	case "token create":
		if policies == nil || *policies == "" {
			return usageErr(stderr, fs, "--policy is required")
		}
		var s *vault.Secret
		if s, err = c.Auth().Token().CreateWithContext(ctx, &vault.TokenCreateRequest{Policies: strings.Split(*policies, ",")}); err == nil {
			out = s.Auth.ClientToken
		}
	}
	if err != nil {
		return fail(stderr, "kms "+cmd, err, "")
	}
	if s, ok := out.(string); ok {
		fmt.Fprintln(stdout, s)
		return 0
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.Encode(out)
	return 0
}
