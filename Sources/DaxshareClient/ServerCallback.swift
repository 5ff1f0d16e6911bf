import DaxshareWire

/// An unsolicited message from the server (header flag CALLBACK), as the session publishes it
/// on `ClientSession.callbacks`.
///
/// The only one in v1 is CB_LAYOUTRECALL. The dispatcher acknowledges it at once, as the
/// protocol requires (§5.5 step 1), with the status its `RecallAcknowledger` picks, and then
/// publishes it here. The layout engine (issue 5) is the consumer: it stops one-sided I/O in
/// the range, commits what is dirty and sends LAYOUTRETURN with the recall id before the
/// deadline. A client that takes no layouts — the two-sided client today — never holds what
/// is recalled, answers BAD_STATEID ("I hold no such layout") and may ignore the stream.
public enum ServerCallback: Sendable, Hashable {
    /// A layout recall; `acknowledgement` is the status the client already replied with.
    case layoutRecall(LayoutRecall, acknowledgement: Status)
}

/// Chooses the status of a CB_LAYOUTRECALL acknowledgement: OK ("seen, returning") for a
/// layout the client holds, BAD_STATEID for one it does not. Must not block: it runs on the
/// task that reads the connection.
public typealias RecallAcknowledger = @Sendable (LayoutRecall) -> Status
