package app

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// addUser implements --add-user: ssh refuses to run for a UID that has no
// passwd entry, which is common when a pod runs with an arbitrary UID. It
// appends an entry for the current UID/GID to passwdPath unless one exists.
func addUser(passwdPath string) error {
	uid, gid := os.Getuid(), os.Getgid()
	f, err := os.Open(passwdPath)
	if err != nil {
		return fmt.Errorf("--add-user: read %s: %w", passwdPath, err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) > 2 && fields[2] == strconv.Itoa(uid) {
			f.Close()
			return nil
		}
	}
	f.Close()
	home := os.Getenv("HOME")
	if home == "" {
		home = "/tmp"
	}
	line := fmt.Sprintf("git-sync:x:%d:%d:git-sync:%s:/sbin/nologin\n", uid, gid, home)
	w, err := os.OpenFile(passwdPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("--add-user: cannot add a passwd entry for UID %d: %s is not writable: %w", uid, passwdPath, err)
	}
	if _, err := w.WriteString(line); err != nil {
		w.Close()
		return fmt.Errorf("--add-user: write %s: %w", passwdPath, err)
	}
	return w.Close()
}
