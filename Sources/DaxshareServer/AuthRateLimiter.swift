import Synchronization

/// Failed authentications per peer address, across connections (PROTOCOL.md §4.4.4): a
/// token bucket of `burst` failures that refills one token every `refill`. While an
/// address's bucket is empty its SESSION_SETUPs get TRY_LATER without a proof being
/// checked, so reconnecting buys a guesser nothing.
///
/// Keyed by address only (not by clientId or identity, which the guesser chooses): a
/// guesser sharing an address with honest clients delays their new sessions too, never
/// the sessions they already hold.
final class AuthRateLimiter: Sendable {
    typealias Instant = ContinuousClock.Instant

    let burst: Int
    let refill: Duration
    /// Addresses remembered at most; past it, the ones whose bucket refilled are forgotten,
    /// then the oldest, so a flood of addresses cannot grow the table without bound.
    let capacity: Int

    private struct Bucket {
        var tokens: Double
        var updated: Instant
    }

    private let buckets = Mutex<[String: Bucket]>([:])

    init(burst: Int, refill: Duration, capacity: Int = 4096) {
        precondition(burst >= 1 && refill > .zero && capacity >= 1)
        self.burst = burst
        self.refill = refill
        self.capacity = capacity
    }

    /// How long `address` must wait before it may try to authenticate, or nil if it may now.
    func wait(for address: String, at now: Instant = .now) -> Duration? {
        buckets.withLock { b in
            guard let bucket = b[address].map({ refilled($0, at: now) }) else { return nil }
            return bucket.tokens >= 1 ? nil : refill * (1 - bucket.tokens)
        }
    }

    /// Counts one failed authentication from `address`.
    func recordFailure(from address: String, at now: Instant = .now) {
        buckets.withLock { b in
            var bucket = b[address].map { refilled($0, at: now) } ?? Bucket(tokens: Double(burst), updated: now)
            bucket.tokens = max(0, bucket.tokens - 1)
            b[address] = bucket
            if b.count > capacity { prune(&b, at: now) }
        }
    }

    /// Addresses currently remembered (for tests).
    var count: Int { buckets.withLock { $0.count } }

    private func refilled(_ bucket: Bucket, at now: Instant) -> Bucket {
        let elapsed = now > bucket.updated ? now - bucket.updated : .zero
        return Bucket(tokens: min(Double(burst), bucket.tokens + elapsed / refill), updated: max(now, bucket.updated))
    }

    private func prune(_ b: inout [String: Bucket], at now: Instant) {
        b = b.filter { refilled($0.value, at: now).tokens < Double(burst) }
        while b.count > capacity, let oldest = b.min(by: { $0.value.updated < $1.value.updated }) {
            b.removeValue(forKey: oldest.key)
        }
    }
}
