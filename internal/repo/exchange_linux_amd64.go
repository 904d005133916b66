package repo

// sysRenameat2 is renameat2(2) on linux/amd64; the syscall package does not
// name it.
const sysRenameat2 = 316
