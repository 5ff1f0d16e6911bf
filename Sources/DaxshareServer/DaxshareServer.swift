// The DaxshareServer module; see Package.swift for the layering.
