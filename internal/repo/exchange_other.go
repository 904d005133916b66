//go:build !(linux && (amd64 || arm64))

package repo

// sysRenameat2 is unknown here: exchange falls back to two renames.
const sysRenameat2 = -1
