/// Runs `count` steps with at most `depth` of them in flight, returning their results in
/// step order: how a large read or write keeps several requests on the wire at once.
///
/// On the first failure no new step starts; the ones already running finish (their requests
/// are on the wire and their buffers in use until the server answers), then the failure is
/// returned. Results are `Result`s rather than throws so that the error type stays
/// `ClientError` through the task group.
func runPipelined<T: Sendable>(
    count: Int, depth: Int, _ step: @escaping @Sendable (Int) async -> Result<T, ClientError>
) async -> Result<[T], ClientError> {
    if count == 0 { return .success([]) }
    if count == 1 { return await step(0).map { [$0] } }
    return await withTaskGroup(of: (Int, Result<T, ClientError>).self) { group in
        var results = [T?](repeating: nil, count: count)
        var next = 0
        var failure: ClientError?
        while next < min(max(1, depth), count) {
            let i = next
            group.addTask { (i, await step(i)) }
            next += 1
        }
        while let (i, result) = await group.next() {
            switch result {
            case let .success(v): results[i] = v
            case let .failure(e): if failure == nil { failure = e }
            }
            if failure == nil && next < count {
                let j = next
                group.addTask { (j, await step(j)) }
                next += 1
            }
        }
        if let failure { return .failure(failure) }
        return .success(results.map { $0! })
    }
}
