// The `daxshare` command-line client. See Daxshare.swift for the commands and their help.
await Entry.main()
