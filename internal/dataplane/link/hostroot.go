package link

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// resolveUnder returns the path of name as the process whose root is root sees it: the kernel would resolve
// an absolute symbolic link met on the way (Docker's /var/run -> /run) from our own root instead.
func resolveUnder(root, name string) (string, error) {
	const maxLinks = 40 // as the kernel's limit
	resolved, rest := "/", strings.Split(strings.TrimPrefix(filepath.Clean("/"+name), "/"), "/")
	for links := 0; len(rest) > 0; {
		next := filepath.Join(resolved, rest[0])
		rest = rest[1:]
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			// Not a link (or missing: the caller's open reports that).
			resolved = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("resolving %s under %s: too many symbolic links", name, root)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(resolved, target)
		}
		resolved = "/"
		rest = append(strings.Split(strings.TrimPrefix(filepath.Clean(target), "/"), "/"), rest...)
	}
	return filepath.Join(root, resolved), nil
}
