package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest"
	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/attest/policyfile"
	"github.com/sharedenclave/sharedenclave/cmd/internal/cli"
)

// kmsFlags are the flags of every `enclavectl kms` command. The token is
// read from --token-file or SHARED_ENCLAVE_TOKEN, never from a flag.
type kmsFlags struct {
	addr, simDir, policy, pccs, collateral, root, tokenFile *string
	simulation                                              *bool
}

func addKMSFlags(fs *flag.FlagSet) kmsFlags {
	return kmsFlags{
		addr:       fs.String("addr", "127.0.0.1:8443", "kmsd address HOST:PORT"),
		simulation: fs.Bool("simulation", false, "verify kmsd against the simulated platform in --sim-dir (NOT a real enclave)"),
		simDir:     fs.String("sim-dir", "", "simulated platform directory, kmsd's (default .sim, with --simulation)"),
		policy:     fs.String("policy", "", "TOML policy file: which kmsd enclaves to trust (required under SGX)"),
		pccs:       fs.String("pccs", "", "PCCS or PCS v4 base URL for collateral (SGX; default Intel PCS)"),
		collateral: fs.String("collateral", "", "collateral directory instead of a PCCS (SGX)"),
		root:       fs.String("root", "", "trusted root CA, PEM, instead of Intel's SGX Root CA (SGX)"),
		tokenFile:  fs.String("token-file", "", "file holding the API token (default: $SHARED_ENCLAVE_TOKEN)"),
	}
}

// errNoToken is a usage error: no token was given.
var errNoToken = errors.New("no token: give --token-file FILE or set SHARED_ENCLAVE_TOKEN (kmsd wrote its root token to its --root-token-file at first start; `enclavectl kms token create` makes others)")

// token returns the API token from --token-file or SHARED_ENCLAVE_TOKEN.
func (f kmsFlags) token(env func(string) string) (string, error) {
	if *f.tokenFile == "" {
		if tok := strings.TrimSpace(env("SHARED_ENCLAVE_TOKEN")); tok != "" {
			return tok, nil
		}
		return "", errNoToken
	}
	b, err := os.ReadFile(*f.tokenFile)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("--token-file %s is empty", *f.tokenFile)
	}
	return tok, nil
}

// client returns Vault's API client, connected over RA-TLS: the handshake
// fails unless kmsd's certificate carries a quote the policy accepts.
// enclavectl attests nothing about itself to kmsd, so it only needs a
// verifier (roots and collateral), never an enclave.
func (f kmsFlags) client(tok string) (*vault.Client, error) {
	simDir := *f.simDir
	if *f.simulation && simDir == "" {
		simDir = ".sim"
	}
	be, err := backend.Open(backend.Options{
		Simulation: *f.simulation, SimDir: simDir, VerifyOnly: true,
		PCCS: *f.pccs, CollateralDir: *f.collateral, RootPEM: *f.root,
	})
	if err != nil {
		return nil, err
	}
	policy, err := policyfile.PeerPolicy(*f.policy, be.DefaultPolicy)
	if err != nil {
		return nil, err
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

// kmsError turns an error of a kms command into one line and a hint
// saying what to do next.
func kmsError(err error, f kmsFlags) (string, error) {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		msg := fmt.Errorf("kmsd answered %d: %s", re.StatusCode, strings.Join(re.Errors, "; "))
		switch re.StatusCode {
		case http.StatusForbidden:
			return "the token is not valid, or its policies do not grant this path: use the root token, or one made by `enclavectl kms token create --policies NAME` for a policy (`enclavectl kms policy write`) that grants it", msg
		case http.StatusNotFound:
			return "no such key or path: `enclavectl kms key list` shows the keys", msg
		case http.StatusTooManyRequests:
			return "kmsd is rate-limiting these requests: wait and try again", msg
		}
		return "", msg
	}
	switch {
	case errors.Is(err, policyfile.ErrNoPolicy):
		return "under SGX, --policy FILE says which kmsd enclaves to trust (docs/DEPLOY.md, step 5); for a simulated kmsd pass --simulation", err
	case errors.Is(err, atls.ErrPeer), errors.Is(err, attest.ErrNotGenuine), errors.Is(err, attest.ErrPolicy), errors.Is(err, atls.ErrNoEvidence):
		if *f.simulation {
			return "kmsd's certificate did not pass attestation: --sim-dir must be the simulated platform kmsd runs on (kmsd --simulation uses .sim in its working directory)", err
		}
		return "kmsd's certificate did not pass attestation: check that --addr is kmsd, that --policy names its MRENCLAVE or MRSIGNER, and that the collateral (--pccs, --collateral) is current; a simulated kmsd needs --simulation", err
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing is listening at %s: start kmsd, or give its address with --addr HOST:PORT", *f.addr), err
	case errors.Is(err, os.ErrNotExist) && *f.simulation:
		return "no simulated platform there: start kmsd --simulation first (it creates .sim), or give --sim-dir DIR", err
	}
	return "", err
}

const kmsUsage = `Usage: enclavectl kms COMMAND [flags]

The KMS calls over attested TLS: the handshake fails unless kmsd's RA-TLS
certificate carries a quote that --policy (or, with --simulation, the
simulated platform's signer) accepts. enclavectl attests nothing about
itself to kmsd, so it needs no enclave, only roots and collateral.

Commands:
  kms key create NAME [--type aes256-gcm96]
  kms key read NAME
  kms key list
  kms key rotate NAME
  kms encrypt NAME PLAINTEXT          (prints vault:vN:… ciphertext)
  kms decrypt NAME CIPHERTEXT         (prints the plaintext)
  kms policy write NAME FILE          (Vault policy language, HCL)
  kms token create --policies NAME[,NAME]

Every command takes:
  --addr HOST:PORT     kmsd (default 127.0.0.1:8443)
  --token-file FILE    the API token (default: $SHARED_ENCLAVE_TOKEN)
  --policy FILE        TOML policy: which kmsd enclaves to trust (SGX)
  --pccs URL | --collateral DIR, --root PEM   how to verify (SGX)
  --simulation [--sim-dir DIR]                trust the simulated platform

Run "enclavectl kms COMMAND --help" for a command's flags.
`

// kmsSynopsis is each kms command's usage line and its number of
// positional arguments.
var kmsSynopsis = map[string]struct {
	usage string
	args  int
}{
	"key create":   {"kms key create NAME [--type TYPE] [flags]", 1},
	"key read":     {"kms key read NAME [flags]", 1},
	"key list":     {"kms key list [flags]", 0},
	"key rotate":   {"kms key rotate NAME [flags]", 1},
	"encrypt":      {"kms encrypt NAME PLAINTEXT [flags]", 2},
	"decrypt":      {"kms decrypt NAME CIPHERTEXT [flags]", 2},
	"policy write": {"kms policy write NAME FILE [flags]", 2},
	"token create": {"kms token create --policies NAME[,NAME] [flags]", 0},
}

func kmsCmd(ctx context.Context, cmd string, args []string, env func(string) string, stdout, stderr io.Writer) int {
	if (cmd == "key" || cmd == "policy" || cmd == "token") && len(args) > 0 && !cli.IsHelp(args[0]) {
		cmd += " " + args[0]
		args = args[1:]
	}
	synopsis, ok := kmsSynopsis[cmd]
	if !ok {
		if cmd == "key" || cmd == "policy" || cmd == "token" {
			if len(args) > 0 && cli.IsHelp(args[0]) {
				fmt.Fprint(stdout, kmsUsage)
				return 0
			}
			fmt.Fprintf(stderr, "enclavectl kms %s: want a subcommand\n\n%s", cmd, kmsUsage)
			return 2
		}
		return unknownSub(stderr, "kms", cmd)
	}
	fs := newFlagsHelpOut("kms "+cmd, synopsis.usage, args, stdout, stderr)
	kf := addKMSFlags(fs)
	var typ, policies *string
	switch cmd {
	case "key create":
		typ = fs.String("type", "aes256-gcm96", "key type: aes128-gcm96, aes256-gcm96, chacha20-poly1305, ed25519, ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096, hmac")
	case "token create":
		policies = fs.String("policies", "", "Vault policies the new token gets, comma-separated (required)")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	if len(pos) != synopsis.args {
		return usageErr(stderr, fs, "want %d arguments, got %d", synopsis.args, len(pos))
	}
	if cmd == "token create" && *policies == "" {
		return usageErr(stderr, fs, "--policies is required: the Vault policies the new token gets (--policy is the TOML file saying which kmsd to trust)")
	}
	var rules []byte
	if cmd == "policy write" {
		if rules, err = os.ReadFile(pos[1]); err != nil {
			return fail(stderr, "kms policy write", err, "FILE is a Vault policy in HCL, e.g. path \"transit/encrypt/app\" { capabilities = [\"update\"] }")
		}
	}
	tok, err := kf.token(env)
	if errors.Is(err, errNoToken) {
		return usageErr(stderr, fs, "%v", err)
	}
	if err != nil {
		return fail(stderr, "kms "+cmd, err, "give a readable file holding the token (kmsd wrote its root token to its --root-token-file)")
	}
	c, err := kf.client(tok)
	if err != nil {
		hint, e := kmsError(err, kf)
		return fail(stderr, "kms "+cmd, e, hint)
	}
	var out any
	switch cmd {
	case "key create":
		_, err = c.Logical().WriteWithContext(ctx, "transit/keys/"+pos[0], map[string]any{"type": *typ})
		out = "created " + pos[0]
	case "key read":
		var s *vault.Secret
		if s, err = c.Logical().ReadWithContext(ctx, "transit/keys/"+pos[0]); err == nil && s == nil {
			return fail(stderr, "kms key read", fmt.Errorf("no key named %q", pos[0]), "`enclavectl kms key list` shows the keys; `enclavectl kms key create NAME` makes one")
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
		err = c.Sys().PutPolicyWithContext(ctx, pos[0], string(rules))
		out = "policy " + pos[0] + " written"
	case "token create":
		var s *vault.Secret
		if s, err = c.Auth().Token().CreateWithContext(ctx, &vault.TokenCreateRequest{Policies: strings.Split(*policies, ",")}); err == nil {
			out = s.Auth.ClientToken
		}
	}
	if err != nil {
		hint, e := kmsError(err, kf)
		return fail(stderr, "kms "+cmd, e, hint)
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
