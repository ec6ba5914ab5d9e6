package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sharedenclave/sharedenclave/internal/durable"
)

// rootDestination is where a new root token and its recovery key go:
// new files (written and fsynced, with their directory, before kms
// commits the token) and, only if asked, standard error.
type rootDestination struct {
	file   string // --root-token-file; the recovery key goes to file+".recovery"
	print  bool   // --print-root-token
	stderr io.Writer

	written []string // files deliver created, for withdraw
}

// deliver is a kms.Deliver.
func (d *rootDestination) deliver(rootToken, recoveryKey string) error {
	if d.file == "" && !d.print {
		return errors.New("no place for the root token: start kmsd with --root-token-file FILE (a new file, mode 0600), " +
			"or with --print-root-token to have it printed on standard error")
	}
	if d.file != "" {
		if err := d.write(d.file, rootToken); err != nil {
			return err
		}
		if recoveryKey != "" {
			if err := d.write(d.file+".recovery", recoveryKey); err != nil {
				d.withdraw()
				return err
			}
		}
		if err := durable.SyncDir(filepath.Dir(d.file)); err != nil {
			d.withdraw()
			return fmt.Errorf("--root-token-file: syncing its directory: %v", err)
		}
	}
	if d.print {
		fmt.Fprintf(d.stderr, "Root token (shown once; store it safely): %s\n", rootToken)
		if recoveryKey != "" {
			fmt.Fprintf(d.stderr, "Recovery key (for kmsd --generate-root if the root token is lost; keep it apart from the token): %s\n", recoveryKey)
		}
	}
	return nil
}

// write creates path (it must not exist) with secret and a newline, mode
// 0600, and fsyncs it.
func (d *rootDestination) write(path, secret string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("--root-token-file: %s already exists and kmsd never overwrites it; if it holds an old token, move it away "+
			"(or choose another path) and start kmsd again", path)
	}
	if err != nil {
		return fmt.Errorf("--root-token-file: %v", err)
	}
	d.written = append(d.written, path)
	_, err = f.WriteString(secret + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--root-token-file: writing %s: %v", path, err)
	}
	return nil
}

// withdraw removes the files deliver created: their token was not
// committed, so they must not be mistaken for a valid one.
func (d *rootDestination) withdraw() {
	for _, p := range d.written {
		os.Remove(p)
	}
	d.written = nil
}

// readRecoveryKey reads the recovery key, the first line of r.
func readRecoveryKey(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	key := strings.TrimSpace(line)
	if key == "" {
		return "", errors.New("no recovery key on standard input: give it the FILE.recovery written with the root token (kmsd --generate-root … < FILE.recovery)")
	}
	return key, nil
}
