package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"filippo.io/age"
	vault "github.com/hashicorp/vault/api"

	"github.com/sharedenclave/sharedenclave/atls"
	"github.com/sharedenclave/sharedenclave/attest/backend"
	"github.com/sharedenclave/sharedenclave/attest/policyfile"
	"github.com/sharedenclave/sharedenclave/custody"
)

const custodyUsage = `Usage: enclavectl custody COMMAND

The operator's side of recovery (docs/DEPLOY.md).

Commands:
  custody keygen --out FILE
        make an age identity for your recovery share (FILE, mode 0600) and
        print its recipient (age1…) for the service's --recovery-recipients
  custody inspect --identity FILE SHARE_FILE
        what a share file is: its deployment, its number, how many shares
        exist and how many are needed; checks that your identity opens it.
        Never prints the share
  custody decrypt-share --identity FILE SHARE_FILE (--out FILE | --print)
        decrypt your share; it is written only to --out (a new file, 0600),
        or printed with --print
  custody unseal --addr HOST:PORT --policy POLICY.toml --identity FILE SHARE_FILE
        [--simulation --sim-dir DIR] [--reset]
        verify the sealed service's RA-TLS quote against POLICY.toml, and only
        then submit your share; prints the progress (t of k) or "unsealed"
  custody status --addr HOST:PORT [--policy POLICY.toml] [--simulation --sim-dir DIR]
        the seal status (sealed, t, n, progress) over verified RA-TLS

Run "enclavectl custody COMMAND --help" for a command's flags.
`

func custodyCmd(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) int {
	switch sub {
	case "keygen":
		return custodyKeygen(args, stdout, stderr)
	case "decrypt-share":
		return custodyDecrypt(args, stdout, stderr)
	case "inspect":
		return custodyInspect(args, stdout, stderr)
	case "unseal", "status":
		return custodyRemote(ctx, sub, args, stdout, stderr)
	case "", "help", "--help", "-h":
		fmt.Fprint(stdout, custodyUsage)
		return 0
	}
	return unknownSub(stderr, "custody", sub)
}

func custodyKeygen(args []string, stdout, stderr io.Writer) int {
	fs := newFlagsHelpOut("custody keygen", "custody keygen --out FILE", args, stdout, stderr)
	out := fs.String("out", "", "new file for the age identity (mode 0600; never overwritten)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	if len(pos) != 0 || *out == "" {
		return usageErr(stderr, fs, "--out FILE is required, and nothing else")
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return fail(stderr, "custody keygen", err, "")
	}
	body := fmt.Sprintf("# created: %s\n# public key: %s\n%s\n", time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
	if err := writeNew(*out, []byte(body), 0o600); err != nil {
		return fail(stderr, "custody keygen", err, "choose a new file: an existing identity is never overwritten")
	}
	fmt.Fprintln(stdout, id.Recipient().String())
	return 0
}

// readIdentity reads an age identity file (age-keygen's format: comments
// and one AGE-SECRET-KEY-1… line).
func readIdentity(path string) (string, error) {
	b, err := readLimited(path)
	if err != nil {
		return "", fmt.Errorf("--identity: %w", err)
	}
	defer clear(b)
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "AGE-SECRET-KEY-1") {
			return l, nil
		}
	}
	return "", fmt.Errorf("--identity: %s holds no age identity (AGE-SECRET-KEY-1…); make one with enclavectl custody keygen", path)
}

func decryptShareFile(identity, shareFile string) (*custody.Share, error) {
	id, err := readIdentity(identity)
	if err != nil {
		return nil, err
	}
	enc, err := readLimited(shareFile)
	if err != nil {
		return nil, err
	}
	return custody.DecryptShare(enc, id)
}

func custodyDecrypt(args []string, stdout, stderr io.Writer) int {
	fs := newFlagsHelpOut("custody decrypt-share", "custody decrypt-share --identity FILE SHARE_FILE (--out FILE | --print)", args, stdout, stderr)
	identity := fs.String("identity", "", "your age identity file (from custody keygen)")
	out := fs.String("out", "", "new file for the decrypted share (mode 0600)")
	print := fs.Bool("print", false, "print the decrypted share on standard output (it is a secret)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	switch {
	case len(pos) != 1 || *identity == "":
		return usageErr(stderr, fs, "want --identity FILE and one SHARE_FILE")
	case *out == "" && !*print:
		return usageErr(stderr, fs, "say where the decrypted share goes: --out FILE (a new file, 0600) or --print")
	}
	sh, err := decryptShareFile(*identity, pos[0])
	if err != nil {
		return fail(stderr, "custody decrypt-share", err, "")
	}
	text := sh.Reveal()
	defer clear(text)
	if *out != "" {
		if err := writeNew(*out, text, 0o600); err != nil {
			return fail(stderr, "custody decrypt-share", err, "choose a new file: --out never overwrites")
		}
		fmt.Fprintf(stderr, "share %d of %d (deployment %s, %d needed) written to %s\n", sh.Index(), sh.Shares, sh.Deployment, sh.Threshold, *out)
	}
	if *print {
		stdout.Write(text)
	}
	return 0
}

// custodyInspect opens a share file with the operator's identity and
// prints what it is, never its value: so an operator can check, before
// an incident, that her identity still opens her share and which
// deployment it belongs to.
func custodyInspect(args []string, stdout, stderr io.Writer) int {
	fs := newFlagsHelpOut("custody inspect", "custody inspect --identity FILE SHARE_FILE", args, stdout, stderr)
	identity := fs.String("identity", "", "your age identity file (from custody keygen)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	if len(pos) != 1 || *identity == "" {
		return usageErr(stderr, fs, "want --identity FILE and one SHARE_FILE")
	}
	sh, err := decryptShareFile(*identity, pos[0])
	if err != nil {
		return fail(stderr, "custody inspect", err, "")
	}
	fmt.Fprintf(stdout, "share %d of %d for deployment %s; %d shares recover the data key; your identity opens it\n", sh.Index(), sh.Shares, sh.Deployment, sh.Threshold)
	return 0
}

func custodyRemote(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) int {
	name := "custody " + sub
	synopsis := name + " --addr HOST:PORT --policy POLICY.toml [--simulation --sim-dir DIR]"
	if sub == "unseal" {
		synopsis = "custody unseal --addr HOST:PORT --policy POLICY.toml --identity FILE SHARE_FILE [--simulation --sim-dir DIR] [--reset]"
	}
	fs := newFlagsHelpOut(name, synopsis, args, stdout, stderr)
	addr := fs.String("addr", "", "the sealed service: kmsd's --listen, or relayd's --recovery-listen (HOST:PORT)")
	policy := fs.String("policy", "", "TOML policy: which enclaves may receive your share ([peers] with mrenclave/mrsigner)")
	simulation := fs.Bool("simulation", false, "verify against the simulated platform in --sim-dir (NOT a real enclave)")
	simDir := fs.String("sim-dir", "", "simulated platform directory (default .sim, with --simulation)")
	pccs := fs.String("pccs", "", "PCCS or PCS v4 base URL (SGX; default Intel PCS)")
	var identity *string
	var reset *bool
	if sub == "unseal" {
		identity = fs.String("identity", "", "your age identity file (from custody keygen)")
		reset = fs.Bool("reset", false, "discard the shares submitted so far instead of submitting one")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	if *addr == "" {
		return usageErr(stderr, fs, "--addr HOST:PORT is required")
	}
	if sub == "unseal" {
		switch {
		case *policy == "":
			return usageErr(stderr, fs, "--policy is required: your share goes only to an enclave the policy names")
		case *reset && len(pos) != 0:
			return usageErr(stderr, fs, "--reset takes no SHARE_FILE")
		case !*reset && (len(pos) != 1 || *identity == ""):
			return usageErr(stderr, fs, "want --identity FILE and one SHARE_FILE")
		}
	} else if len(pos) != 0 {
		return usageErr(stderr, fs, "no arguments expected")
	}
	dir := *simDir
	if *simulation && dir == "" {
		dir = ".sim"
	}
	be, err := backend.Open(backend.Options{Simulation: *simulation, SimDir: dir, PCCS: *pccs})
	if err != nil {
		return fail(stderr, name, err, "")
	}
	p, err := policyfile.PeerPolicy(*policy, be.DefaultPolicy)
	if err != nil {
		return fail(stderr, name, err, "")
	}
	// Decrypt first, so that a wrong identity fails before any connection.
	var share *custody.Share
	if sub == "unseal" && !*reset {
		if share, err = decryptShareFile(*identity, pos[0]); err != nil {
			return fail(stderr, name, err, "")
		}
		defer share.Wipe()
	}
	cfg := vault.DefaultConfig()
	cfg.Address = "https://" + *addr
	cfg.MaxRetries = 0
	cfg.HttpClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: atls.RATLSClientConfig(be.Verifier, p)}}
	c, err := vault.NewClient(cfg)
	if err != nil {
		return fail(stderr, name, err, "")
	}
	c.ClearToken()
	// The status request is the attestation: the RA-TLS handshake fails
	// unless the certificate carries a genuine quote the policy accepts.
	st, err := c.Sys().SealStatusWithContext(ctx)
	if err != nil {
		return fail(stderr, name, fmt.Errorf("%s did not attest as the policy requires, or is not reachable; nothing was submitted: %w", *addr, err), "")
	}
	if sub == "unseal" {
		if !st.Sealed {
			fmt.Fprintln(stdout, "already unsealed; nothing submitted")
			return 0
		}
		if *reset {
			st, err = c.Sys().UnsealWithOptionsWithContext(ctx, &vault.UnsealOpts{Reset: true})
		} else {
			text := share.Reveal()
			st, err = c.Sys().UnsealWithContext(ctx, string(text))
			clear(text)
		}
		if err != nil {
			var re *vault.ResponseError
			if errors.As(err, &re) && len(re.Errors) > 0 {
				err = errors.New(strings.Join(re.Errors, "; "))
			}
			return fail(stderr, name, err, "")
		}
	}
	if st.Sealed {
		fmt.Fprintf(stdout, "sealed: %d of %d shares submitted (%d-of-%d)\n", st.Progress, st.T, st.T, st.N)
	} else {
		fmt.Fprintf(stdout, "unsealed (%d-of-%d)\n", st.T, st.N)
	}
	return 0
}
