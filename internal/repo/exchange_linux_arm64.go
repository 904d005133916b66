package repo

// sysRenameat2 is renameat2(2) on linux/arm64; the syscall package does not
// name it.
const sysRenameat2 = 276
