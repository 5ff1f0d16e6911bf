import DaxshareWire

/// SERVER_STATS's counter, named apart from swift-metrics' `Counter` (ServerCounters imports both).
public typealias WireCounter = Counter
