import CoreMetrics
import FlyingFox
import FlyingSocks
import Foundation
import Logging
import Prometheus

/// The Prometheus endpoint: swift-metrics bootstrapped with swift-prometheus's factory, and
/// `GET /metrics` answered in the text exposition format by a small HTTP server (FlyingFox),
/// on loopback unless configured otherwise.
enum MetricsEndpoint {
    /// Makes every metric made from now on (the server's counters among them) Prometheus's.
    /// Call before making the server: handles made earlier stay no-ops.
    static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Recalls last from microseconds (nothing to wait for) to the recall deadline and past.
        factory.durationHistogramBuckets["daxshare_recall_duration_seconds"] = [
            .microseconds(100), .milliseconds(1), .milliseconds(10), .milliseconds(100), .milliseconds(500),
            .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30),
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }

    /// Serves `registry` at `http://host:port/metrics` until cancelled; returns the bound
    /// address (port 0 picks one) once listening.
    /// `beforeScrape` refreshes what is computed rather than counted (the per-identity gauges).
    static func start(_ registry: PrometheusCollectorRegistry, host: String, port: UInt16, logger: Logger,
                      beforeScrape: @escaping @Sendable () -> Void = {}) async throws
        -> (server: HTTPServer, task: Task<Void, Never>, address: String)
    {
        let address: any SocketAddress =
            host.contains(":") ? try sockaddr_in6.inet6(ip6: host, port: port) : try sockaddr_in.inet(ip4: host, port: port)
        let server = HTTPServer(address: address, timeout: 10, pool: try EpollSocketPool(), logger: .disabled)
        await server.appendRoute("GET /metrics") { _ in
            beforeScrape()
            return HTTPResponse(
                statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: Data(registry.emitToBuffer()))
        }
        let task = Task {
            do { try await server.run() } catch is CancellationError {} catch {
                logger.error("metrics endpoint stopped: \(error)")
            }
        }
        try await server.waitUntilListening(timeout: 10)
        let bound: String
        switch await server.listeningAddress {
        case let .ip4(ip, port)?: bound = "\(ip):\(port)"
        case let .ip6(ip, port)?: bound = "[\(ip)]:\(port)"
        default: bound = "\(host):\(port)"
        }
        return (server, task, bound)
    }
}
