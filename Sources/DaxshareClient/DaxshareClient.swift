// The DaxshareClient module; see Package.swift for the layering.
