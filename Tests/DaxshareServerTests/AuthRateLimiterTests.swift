@testable import DaxshareServer
import Testing

@Suite struct AuthRateLimiterTests {
    let t0 = ContinuousClock.now

    /// Within a microsecond: the bucket counts in Double.
    func close(_ wait: Duration?, _ expected: Duration) -> Bool {
        guard let wait else { return false }
        return abs((wait - expected) / .microseconds(1)) < 1
    }

    @Test func anAddressIsRefusedOnceItsBurstIsSpentAndEarnsATokenBackPerRefill() {
        let limiter = AuthRateLimiter(burst: 3, refill: .seconds(2))
        #expect(limiter.wait(for: "10.0.0.2", at: t0) == nil, "an address never seen may try")
        for _ in 0..<2 { limiter.recordFailure(from: "10.0.0.2", at: t0) }
        #expect(limiter.wait(for: "10.0.0.2", at: t0) == nil, "two of three failures spent")
        limiter.recordFailure(from: "10.0.0.2", at: t0)
        #expect(close(limiter.wait(for: "10.0.0.2", at: t0), .seconds(2)))
        #expect(close(limiter.wait(for: "10.0.0.2", at: t0 + .milliseconds(500)), .milliseconds(1500)))
        #expect(limiter.wait(for: "10.0.0.2", at: t0 + .seconds(2)) == nil, "one token back after one refill")
        // That token buys exactly one more failure.
        limiter.recordFailure(from: "10.0.0.2", at: t0 + .seconds(2))
        #expect(close(limiter.wait(for: "10.0.0.2", at: t0 + .seconds(2)), .seconds(2)))
    }

    @Test func addressesAreCountedApart() {
        let limiter = AuthRateLimiter(burst: 1, refill: .seconds(60))
        limiter.recordFailure(from: "10.0.0.2", at: t0)
        #expect(limiter.wait(for: "10.0.0.2", at: t0) != nil)
        #expect(limiter.wait(for: "10.0.0.3", at: t0) == nil)
        #expect(limiter.wait(for: "fe80::2", at: t0) == nil)
    }

    @Test func failuresWhileRefusedDoNotDigDeeper() {
        // A failure recorded at an empty bucket (a proof already in flight) leaves it empty,
        // not negative: the wait never exceeds one refill.
        let limiter = AuthRateLimiter(burst: 1, refill: .seconds(4))
        for _ in 0..<5 { limiter.recordFailure(from: "a", at: t0) }
        #expect(close(limiter.wait(for: "a", at: t0), .seconds(4)))
    }

    @Test func aFullBucketNeverOverfills() {
        let limiter = AuthRateLimiter(burst: 2, refill: .seconds(1))
        limiter.recordFailure(from: "a", at: t0)
        // An hour later the bucket holds `burst` tokens, not 3600.
        let later = t0 + .seconds(3600)
        limiter.recordFailure(from: "a", at: later)
        limiter.recordFailure(from: "a", at: later)
        #expect(close(limiter.wait(for: "a", at: later), .seconds(1)))
    }

    @Test func theTableStaysBoundedUnderAFloodOfAddresses() {
        let limiter = AuthRateLimiter(burst: 2, refill: .seconds(10), capacity: 8)
        for i in 0..<100 { limiter.recordFailure(from: "10.1.\(i / 256).\(i % 256)", at: t0 + .milliseconds(i)) }
        #expect(limiter.count <= 8)
        // The newest addresses are the ones remembered.
        limiter.recordFailure(from: "10.1.0.99", at: t0 + .milliseconds(100))
        #expect(limiter.wait(for: "10.1.0.99", at: t0 + .milliseconds(100)) != nil)
    }
}
