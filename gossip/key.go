package gossip

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

// readKeyFile reads the gossip encryption key: base64 (standard encoding,
// surrounding whitespace ignored) of 16, 24 or 32 bytes (AES-128, -192,
// -256), in a file neither group nor others may read or write.
func readKeyFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("gossip key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("gossip key file %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("gossip key file %s has mode %04o: group and others must have no access (chmod 600 %s)", path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gossip key file: %w", err)
	}
	text := strings.TrimSpace(string(data))
	if text == "" {
		return nil, fmt.Errorf("gossip key file %s: empty (want the base64 of a 16, 24 or 32-byte key)", path)
	}
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("gossip key file %s: not base64: %v", path, err)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("gossip key file %s: key of %d bytes: must be 16, 24 or 32 bytes (e.g. head -c 32 /dev/urandom | base64)", path, len(key))
}
