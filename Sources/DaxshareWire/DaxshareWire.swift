// The DaxshareWire module; see Package.swift for the layering.
