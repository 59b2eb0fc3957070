module citadel.local/demo-app

// The standard library only: no module download, nothing to audit but this file.
go 1.22
