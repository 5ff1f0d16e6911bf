/// Runs the server's own changes to a file's metadata: ftruncate, futimens, an extended
/// attribute, an unlink or rename of its name. The file's layout state (`FileLayouts`) is the
/// one implementation: the delegation it may hold on the file breaks on its holder's own
/// changes too, so it is given up around them.
protocol OwnMetadataChanges: AnyObject, Sendable {
    /// Runs `change`; `expectingUnlink` says the change itself may leave the file nameless.
    func ownChange<T, E: Error>(expectingUnlink: Bool, _ change: () throws(E) -> T) throws(E) -> T
}
