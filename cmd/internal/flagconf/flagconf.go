// Package flagconf fills a command's flags from a TOML configuration file
// and from the environment, so that every flag can be set three ways with
// one precedence: command line, then environment, then file, then the
// flag's default. Keys are flag names (listen, data-dir, …); unknown keys
// are errors. It reads no environment itself: main passes os.Getenv.
package flagconf

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// EnvName is the environment variable for a flag: prefix + the flag name
// upper-cased with '-' as '_' (prefix "RELAYD_", flag "data-dir" →
// RELAYD_DATA_DIR).
func EnvName(prefix, flagName string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Apply sets every flag not given on the command line from the
// environment or, failing that, from the TOML file at path (if path is
// not empty). The flag named "config" is never read from the file.
func Apply(fs *flag.FlagSet, path, envPrefix string, getenv func(string) string) error {
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })

	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		var doc map[string]any
		if err := toml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil {
			return fmt.Errorf("config file %s: %v", path, err)
		}
		keys := make([]string, 0, len(doc))
		for k := range doc {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			f := fs.Lookup(k)
			if f == nil || k == "config" {
				return fmt.Errorf("config file %s: unknown key %q (the keys are the flag names: %s)", path, k, strings.Join(names(fs), ", "))
			}
			if explicit[k] || getenv(EnvName(envPrefix, k)) != "" {
				continue
			}
			v, err := scalar(doc[k])
			if err != nil {
				return fmt.Errorf("config file %s: key %q: %v", path, k, err)
			}
			if err := fs.Set(k, v); err != nil {
				return fmt.Errorf("config file %s: key %q: %v", path, k, err)
			}
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || explicit[f.Name] || f.Name == "config" {
			return
		}
		name := EnvName(envPrefix, f.Name)
		if v := getenv(name); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("environment %s: %v", name, serr)
			}
		}
	})
	return err
}

func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool, int64, float64:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("must be a string, number or boolean, not %T", v)
}

func names(fs *flag.FlagSet) []string {
	var out []string
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" {
			out = append(out, f.Name)
		}
	})
	return out
}
